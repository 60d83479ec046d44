"""Where processes of one search or one DDP run wait for each other: a joining Optuna worker for the parent
MLflow run another worker claimed, and every DDP rank for the one that clears a finished run folder."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
import pytest
from filelock import FileLock
from optuna.storages.journal import JournalFileBackend, JournalStorage

from components.training import search
from components.training.search import PARENT_ATTR, _study_parent
from components.training.train import clear_finished
from medpipe.errors import MedpipeError


def _two_workers(tmp_path: Path) -> tuple[optuna.Study, optuna.Study]:
    """Two handles on one journal-file study, as two ``medpipe hpo worker`` processes hold it."""
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "journal.log")))
    first = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    return first, optuna.load_study(study_name="s", storage=storage)


def test_joining_worker_waits_for_the_parent_run_the_first_one_creates(tmp_path: Path) -> None:
    first, second = _two_workers(tmp_path)
    assert _study_parent(first, None, "0") == (None, True)  # elected: it creates the parent run
    creates = threading.Timer(0.15, lambda: first.set_user_attr(PARENT_ATTR, "run-1"))
    start = time.monotonic()
    creates.start()
    try:
        assert _study_parent(second, None, "0") == ("run-1", False)
    finally:
        creates.cancel()
    assert time.monotonic() - start >= 0.15  # it waited for it rather than creating a second parent


def test_joining_worker_gives_up_with_the_command_that_unblocks_it(tmp_path: Path, monkeypatch) -> None:
    first, second = _two_workers(tmp_path)
    assert _study_parent(first, None, "0") == (None, True)  # ... and then crashes before creating it
    monkeypatch.setattr(search, "PARENT_WAIT_S", 0.2)
    monkeypatch.setattr(search, "PARENT_POLL_S", 0.02)
    with pytest.raises(MedpipeError, match=r"did not create it within 0 s .*optuna delete-study --study-name s\."):
        _study_parent(second, None, "0")


def test_a_finished_run_folder_is_cleared_once_and_an_interrupted_one_kept(tmp_path: Path) -> None:
    finished, interrupted = tmp_path / "final-a", tmp_path / "final-b"
    for run_dir in (finished, interrupted):
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.ckpt").write_text("old")
    (finished / "complete").write_text("run-1")
    for _rank in range(2):  # every rank calls it; the second finds it cleared
        clear_finished(finished)
        clear_finished(interrupted)
    assert not finished.exists() and (interrupted / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in tmp_path.glob("final-*")) == ["final-b"]  # nothing left beside the run folders


def test_a_rank_blocked_on_the_run_folder_lock_fails_naming_the_lock(tmp_path: Path) -> None:
    run_dir = tmp_path / "final-a"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "complete").write_text("run-1")
    with FileLock(tmp_path / ".final-a.lock"), pytest.raises(MedpipeError, match=r"\.final-a\.lock"):
        clear_finished(run_dir, timeout_s=0.05)
    assert (run_dir / "complete").is_file()  # nothing cleared without the lock
