"""A SIGKILLed training must not wedge the `gpu` slot, and its MLflow run must not stay RUNNING.

Real processes: `medpipe train` is killed (SIGKILL to its whole process group, temporary Prefect server
included) while it holds the slot and logs an MLflow run; a second `medpipe train` must then complete.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.data import write_prepared_breastmnist
from tests.helpers.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
TRAIN = ["train", "--profile", "smoke", "--no-search", "--prepared", "prepared", "-S", "registry.bootstrap_samples=100"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "MEDPIPE_"))}
    env.update(MEDPIPE_HOME=str(home), MEDPIPE_GPU_LEASE_SECONDS="60", MEDPIPE_OFFLINE="1", PYTHONUNBUFFERED="1")
    return env


def _medpipe(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "medpipe", *args]
    return subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _run_statuses(home: Path) -> list[str]:
    db = home / "mlflow.db"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as con:
            return [s for (s,) in con.execute("select status from runs order by start_time")]
    except sqlite3.OperationalError:  # tables not created yet
        return []


def _wait_for(what: str, condition, proc: subprocess.Popen, log: Path, timeout_s: float) -> None:
    wait_until(condition, what, timeout_s, procs=[proc], every_s=0.5, detail=lambda: log.read_text()[-3000:])


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_sigkilled_training_frees_the_gpu_slot_and_its_mlflow_run(tmp_path: Path, breastmnist_npz: Path) -> None:
    for name in ("params.yaml", "profiles.yaml"):
        shutil.copy(REPO / name, tmp_path / name)
    write_prepared_breastmnist(breastmnist_npz, tmp_path / "prepared")
    home = tmp_path / "state"
    env = _env(home)
    leases = home / "prefect" / "concurrency_leases"

    first_log = tmp_path / "first.log"
    first = _medpipe([*TRAIN, "-S", "train.epochs=200"], tmp_path, env, first_log)
    try:
        # It holds the slot (a lease file) and logs a RUNNING MLflow run: kill it and its temporary server.
        _wait_for(
            "a GPU-slot lease file", lambda: leases.is_dir() and any(leases.glob("*-*.json")), first, first_log, 900
        )
        _wait_for("a RUNNING MLflow run", lambda: "RUNNING" in _run_statuses(home), first, first_log, 600)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert _run_statuses(home) == ["RUNNING"]

    second_log = tmp_path / "second.log"
    second = _medpipe([*TRAIN, "-S", "train.epochs=1"], tmp_path, env, second_log)
    try:
        rc = second.wait(timeout=1200)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    out = second_log.read_text()
    assert rc == 0, out[-4000:]
    # It said what it waited for and since when, then freed the dead holder's slot and went on.
    assert "waiting for the 'gpu' concurrency slot since" in out, out[-4000:]
    assert "held by flow run" in out
    assert "freed the 'gpu' slot of flow run" in out
    assert "acquired the 'gpu' slot after waiting since" in out
    # The killed run is KILLED (not RUNNING forever); the new one FINISHED.
    statuses = _run_statuses(home)
    assert statuses[0] == "KILLED" and "RUNNING" not in statuses, statuses
    assert "FINISHED" in statuses
