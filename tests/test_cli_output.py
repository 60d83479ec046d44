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
    listing = _help("registry", "list")  # the console entry (main) drops Typer's <bool> tags ...
    assert "--json" in listing and "<bool>" not in listing
    # ... and importing medpipe.cli patches nothing: in-process Typer (Typer 0.29) still prints them
    assert "<bool>" in CliRunner().invoke(app, ["registry", "list", "--help"], env={"COLUMNS": "120"}).output
    serve = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "120"}).output
    assert "train.epochs" not in serve  # help that fits the command
    uis = CliRunner().invoke(app, ["ui", "--help"], env={"COLUMNS": "120"}).output
    assert [n for n in ("mlflow", "prefect", "evidently") if f"│ {n} " in uis] == ["mlflow", "prefect", "evidently"]
    for old in (["server", "--help"], ["monitor", "ui", "--help"]):  # the old names still work, unlisted
        assert CliRunner().invoke(app, old).exit_code == 0
    assert "│ ui " not in CliRunner().invoke(app, ["monitor", "--help"], env={"COLUMNS": "120"}).output
    status = _help("data", "status")
    assert "--json" in status and "<bool>" not in status


def _help(*command: str) -> str:
    env = {**os.environ, "COLUMNS": "120"}
    out = subprocess.run([sys.executable, "-m", "medpipe", *command, "--help"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


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


def _run_summary(tmp_path: Path, model_args: str = "", **training: object) -> list[str]:
    """The lines `medpipe run` ends with, for a training outcome like BreastMNIST's smoke run (``training``:
    fields of its TrainingSummary to change)."""
    from rich.console import Console

    from medpipe.cli.reporting import print_pipeline_summary
    from medpipe.settings import Settings
    from pipelines.results import DeploymentSummary, MonitoringSummary, PipelineSummary, TrainingSummary

    figures = {"auc": 0.8484, "auc_ci_low": 0.7748, "auc_ci_high": 0.9129, "ece": 0.0628, "brier": 0.1222, "n": 156}
    for key, value in {"sensitivity": 0.8096, "specificity": 0.6404, "ppv": 0.4533, "npv": 0.9012}.items():
        figures |= {key: value, f"{key}_ci_low": value - 0.05, f"{key}_ci_high": value + 0.05}
    figures |= {"accuracy": 0.6859, "balanced_accuracy": 0.7249, "threshold": 0.1372, "precision.malignant": 0.45}
    fields = dict(
        data_version="c4269b66.dir", prepared_path="data/prepared", run_id="r1", search_run_id=None, best_params={},
        test_metrics=figures, model_dir="m", onnx_path="m/model.onnx", parity_passed=True,
        model_name="breastmnist-classifier", version="1", promoted=True, champion="1", gate_reason="",
        model_card="card.md", operating_point="p(malignant) >= 0.1372 (sensitivity >= 0.9 on validation)",
    )  # fmt: skip
    trained = TrainingSummary(**{**fields, **training})
    deployment, monitoring = None, None
    if trained.champion:  # the pipeline deploys and watches the champion, whichever version it is
        deployment = DeploymentSummary(trained.model_name, trained.champion, "serving/1/model.onnx", {}, False)
        monitoring = MonitoringSummary("ok", False, 156, None, "1", "drift.html", "drift.json", "none", "not started")
    console = Console(record=True, width=100)
    print_pipeline_summary(
        console, PipelineSummary(trained, deployment, monitoring), Settings(home=tmp_path), model_args
    )
    return console.export_text().splitlines()


def test_the_run_summary_is_compact_and_names_each_ui(tmp_path: Path) -> None:
    """The end of `make demo`: the test figures in two lines with CIs (the full table is the model card's), one
    line per fact, and each UI under the tool's own name."""
    lines = _run_summary(tmp_path)

    assert len(lines) <= 18, lines  # was 30: a 14-row table, two title lines
    assert not any(c in "".join(lines) for c in "┏┃│└"), lines  # no table
    assert lines[1] == "test (ONNX, n=156) AUC 0.848 [0.775, 0.913]   ECE 0.063   Brier 0.122"
    assert lines[3].startswith("at that threshold sens 0.810 [0.760, 0.860]   spec 0.640") and "NPV 0.901" in lines[3]
    assert lines[-1] == f"state folder:             {tmp_path}"  # ends with where everything is
    commands = {line.split(": ", 1)[1].strip() for line in lines if "uv run medpipe ui" in line}
    assert commands == {f"uv run medpipe ui {ui}" for ui in ("mlflow", "prefect", "evidently")}
    assert "serve the champion:       uv run medpipe serve" in lines


def test_the_run_summary_never_suggests_serving_when_there_is_no_champion(tmp_path: Path) -> None:
    """A first version the gate refused: no `medpipe serve` to try, but the gate's reason, the exact command
    that promotes it anyway (for this run's model, here not the params file's), and what to change instead."""
    reason = "expected calibration error 0.183 must be < registry.max_ece 0.1"
    args = " -S registry.model_name=scans3-classifier"
    lines = _run_summary(tmp_path, args, model_name="scans3-classifier", promoted=False, champion=None,
                         gate_reason=reason)  # fmt: skip

    assert not [line for line in lines if "serve the champion" in line], lines
    assert f"this run          v1: not promoted ({reason})" in lines
    assert "nothing to serve:         no champion: v1 did not pass the promotion gate (reason above)" in lines
    promote = 'uv run medpipe registry promote 1 --reason "accepted despite the gate"' + args
    assert f"  serve it anyway:        {promote} && uv run medpipe serve{args}" in lines  # one shell line
    assert "  or:                     change registry.max_ece (params.yaml or -S) and run again" in lines
    assert lines[-1] == f"state folder:             {tmp_path}"


def test_the_run_summary_says_an_older_champion_keeps_serving(tmp_path: Path) -> None:
    lines = _run_summary(tmp_path, version="2", promoted=False, champion="1", gate_reason="AUC 0.80 below v1's")

    assert "serve the champion:       uv run medpipe serve  (still v1: v2 not promoted)" in lines
    assert "champion          breastmnist-classifier v1" in lines
    assert not [line for line in lines if "promote" in line and "registry" in line], lines
