"""What a user sees: one error line for bad input (before any server starts), JSON for list/history
commands, help in workflow order without type tags on flags, and logs routed to the state folder."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO_ROOT = Path(__file__).resolve().parents[1]


def _medpipe(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MEDPIPE_HOME": str(tmp_path / "state"), "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "medpipe", *args, "--params", str(REPO_ROOT / "params.yaml")]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("verbose", [False, True])
def test_a_wrong_data_path_fails_once_before_any_server_starts(tmp_path: Path, verbose: bool) -> None:
    missing = tmp_path / "no-such-scans.npz"
    out = _medpipe(tmp_path, *(["-v"] if verbose else []), "run", "--data", str(missing))
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no-such-scans.npz" in errors[0], out.stderr
    assert ("Traceback" in out.stderr) is verbose  # -v adds the traceback, and only -v
    assert "temporary server" not in out.stdout + out.stderr  # Prefect never started
    assert not (tmp_path / "prefect" / "prefect.db").exists()


def test_help_lists_commands_in_workflow_order_without_type_tags_on_flags() -> None:
    from medpipe.cli import app

    text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "120"}).output
    order = ["run", "data", "train", "hpo", "deploy", "serve", "predict", "registry", "monitor", "ui", "schedule"]
    positions = [text.index(f"│ {name} ") for name in order]
    assert positions == sorted(positions), text
    listing = CliRunner().invoke(app, ["registry", "list", "--help"], env={"COLUMNS": "120"}).output
    assert "--json" in listing and "<bool>" not in listing
    serve = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "120"}).output
    assert "train.epochs" not in serve  # help that fits the command


def test_registry_history_json_is_complete_when_piped(tmp_path: Path) -> None:
    from components.registry.audit import append_event

    reason = "a long reason that an 80-column table would cut: " + "x" * 120
    append_event(tmp_path / "state" / "registry-audit.jsonl", model="breastmnist-classifier", alias="champion",
                 from_version=None, to_version="1", action="gate", reason=reason, actor="test")  # fmt: skip
    out = _medpipe(tmp_path, "registry", "history", "--json")
    assert out.returncode == 0, out.stderr
    (event,) = json.loads(out.stdout)
    assert event["alias"] == "champion" and event["to_version"] == "1" and event["reason"] == reason


def test_library_logs_go_to_the_state_folder_and_progress_to_stdout(tmp_path: Path, capsys) -> None:
    from medpipe.cli.logs import configure
    from medpipe.progress import progress

    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        log_file = configure(tmp_path, verbose=False)
        logging.getLogger("a_library.store").info("Creating initial database tables...")  # any library logger
        progress("training   train   %5.1f s", 12.3)
        for handler in root.handlers:
            handler.flush()
        captured = capsys.readouterr()
        assert "training   train    12.3 s" in captured.out
        assert "database tables" not in captured.out + captured.err  # quiet terminal
        assert "a_library.store: Creating initial database tables" in log_file.read_text()
        assert log_file == tmp_path / "logs" / "medpipe.log"
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_medpipe", False)]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(saved[1])
        logging.captureWarnings(False)
