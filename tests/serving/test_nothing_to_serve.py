"""`medpipe serve` with no champion says so at start, in the terminal: why (the gate's reason, or no version at
all), the exact command to run, and that it keeps looking; the real server then serves the version that command
promotes, without a restart."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tests.helpers.ports import free_port
from tests.helpers.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "params.yaml"
REASON = "failed: expected calibration error 0.1828 must be < registry.max_ece 0.05"  # as the gate tags it


@pytest.mark.slow  # a real `medpipe serve` process (ONNX Runtime, MLflow: ~15 s of CPU) and the session's model
def test_serve_without_a_champion_says_why_then_serves_what_the_printed_command_promotes(
    cnn_a, medpipe_home: Path, empty_mlflow_db, tmp_path: Path
) -> None:
    from medpipe.cli import app
    from medpipe.settings import get_settings
    from tests.helpers.artefacts import register

    empty_mlflow_db(medpipe_home)
    tags = {"gate.decision": "rejected", "gate.reason": REASON}
    version = register(cnn_a, "scans3-classifier", get_settings(), tags=tags)  # a @challenger the gate refused
    port, log = free_port(), tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MEDPIPE_", "MLFLOW_"))}
    env["MEDPIPE_HOME"] = str(medpipe_home)
    cmd = [str(Path(sys.executable).parent / "medpipe"), "serve", "--port", str(port), "--params", str(PARAMS),
           "-S", "registry.model_name=scans3-classifier", "-S", "serving.reload_interval_s=0.5",
           "-S", "export.intra_op_threads=1"]  # fmt: skip
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1/ready"
    try:
        first = wait_until(lambda: httpx.get(url, timeout=5), "the server to answer", 180, procs=[proc],
                           ignore=(httpx.TransportError,), detail=log.read_text)  # fmt: skip
        said = log.read_text().splitlines()
        promote = next((s.removeprefix("  serve it anyway: ") for s in said if "serve it anyway" in s), "")
        assert promote.startswith("medpipe registry promote"), said  # said at start, before any request
        result = CliRunner().invoke(app, shlex.split(promote)[1:])  # the command exactly as printed
        body = wait_until(lambda: (r := httpx.get(url, timeout=5)).status_code == 200 and r.json(),
                          "the promoted version to be served", 120, procs=[proc], detail=log.read_text)  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    assert first.status_code == 503, first.text  # up, not ready
    reason = REASON.removeprefix("failed: ")
    assert (f"nothing to serve yet: scans3-classifier has no @champion; its newest version, v{version}, "
            f"was rejected by the promotion gate: {reason}") in said, said  # fmt: skip
    assert promote == (f'medpipe registry promote {version} --reason "accepted despite the gate" --params {PARAMS} '
                       "-S registry.model_name=scans3-classifier"), said  # fmt: skip
    assert "  or change registry.max_ece (params.yaml or -S) and train again: medpipe run" in said
    assert any(s.startswith("the server starts anyway") and "every 0.5 s" in s for s in said), said
    assert result.exit_code == 0, result.output
    assert body["model_version"] == version  # hot-loaded: no restart


def test_the_start_message_names_the_models_with_a_champion_when_the_model_has_no_version(
    medpipe_home: Path, empty_mlflow_db
) -> None:
    """A model name the registry does not hold (another dataset's, a typo): train one, or serve one of those
    that have a champion."""
    from mlflow import MlflowClient

    from components.registry.aliases import alias_gap
    from medpipe.cli.next_steps import nothing_to_serve_lines
    from medpipe.settings import get_settings

    client = MlflowClient(empty_mlflow_db(medpipe_home))
    for name in ("breastmnist-classifier", "chestmnist-classifier"):  # a champion; only a challenger
        client.create_registered_model(name)
        client.create_model_version(name, source=str(medpipe_home / "weights"))  # never loaded: a name is asked
    client.set_registered_model_alias("breastmnist-classifier", "champion", "1")
    client.set_registered_model_alias("chestmnist-classifier", "challenger", "1")
    gap = alias_gap(get_settings(), "scans3-classifier")
    lines = nothing_to_serve_lines("", gap, "", 10.0)

    assert lines[0] == (
        "nothing to serve yet: no version of scans3-classifier is registered, so no scans3-classifier@champion"
    )
    assert lines[1:3] == [
        "  train and register one: medpipe run",
        "  or serve one that has a champion (breastmnist-classifier): "
        "medpipe serve -m models:/breastmnist-classifier@champion",
    ]
    assert "looks again every 10 s" in lines[-1]
