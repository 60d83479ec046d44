"""The DVC repo of the project: one machine-wide lock per repo, DVC's Python API in-process, ``dvc init`` and the
machine-local cache/remote configuration."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from medpipe.errors import MedpipeError

if TYPE_CHECKING:
    from dvc.repo import Repo

    from medpipe.settings import Settings

RAW = "data/raw"
RAW_DVC = "data/raw.dvc"
PREPARED = "data/prepared"
STAGE = "prepare"
DATA_TARGETS = (RAW_DVC, STAGE)
REMOTE_NAME = "medpipe"


class DvcError(MedpipeError):
    """A DVC command failed; the message quotes the command and DVC's own error."""


_locks: dict[str, FileLock] = {}


@contextmanager
def dvc_lock(project_dir: Path, timeout_s: float = 900.0) -> Iterator[None]:
    """Hold the machine-wide lock for DVC commands in ``project_dir`` (re-entrant within a thread)."""
    key = hashlib.sha256(str(Path(project_dir).resolve()).encode()).hexdigest()[:16]
    lock = _locks.get(key)
    if lock is None:
        lock_dir = Path(tempfile.gettempdir()) / "medpipe-locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        lock = _locks.setdefault(key, FileLock(lock_dir / f"dvc-{key}.lock"))
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        raise DvcError(
            f"another DVC operation in {project_dir} has held the lock for over {timeout_s:.0f} s; "
            "wait for it to finish and retry"
        ) from None
    try:
        yield
    finally:
        lock.release()


@contextmanager
def _log_level(name: str, level: int) -> Iterator[None]:
    logger = logging.getLogger(name)
    saved = logger.level
    logger.setLevel(max(level, saved))
    try:
        yield
    finally:
        logger.setLevel(saved)


@contextmanager
def open_repo(project_dir: Path, action: str) -> Iterator[Repo]:
    """The DVC repo at ``project_dir``, held under :func:`dvc_lock`; DVC failures become :class:`DvcError`.

    DVC's Python API is used in-process: the same code path as the ``dvc`` CLI without paying a
    fresh interpreter and DVC import (~1 s of CPU) for every command.
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    with dvc_lock(project_dir):
        try:
            # DVC logs progress and git hints at INFO to stdout; our callers report what matters.
            with _log_level("dvc", logging.WARNING), Repo(str(project_dir)) as repo:
                yield repo
        except DvcException as err:
            cause = f" ({err.__cause__})" if err.__cause__ else ""
            raise DvcError(f"DVC could not {action} in {project_dir}: {err}{cause}") from err


def dvc_env() -> dict[str, str]:
    """The environment of a ``dvc`` child process: analytics off, this interpreter's folder (the venv) first on
    PATH so that stage commands (``python -m ...``, ``medpipe ...``) run in this environment."""
    return {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def run_dvc(project_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``dvc`` CLI (same interpreter) in ``project_dir`` under the lock, for commands without a wrapper."""
    with dvc_lock(project_dir):
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=project_dir, env=dvc_env(), capture_output=True, text=True
        )
    if check and proc.returncode != 0:
        output = (proc.stderr.strip() or proc.stdout.strip())[-3000:]
        raise DvcError(f"`dvc {' '.join(args)}` failed in {project_dir} (exit {proc.returncode}):\n{output}")
    return proc


def reproduce(project_dir: Path, *targets: str) -> list[str]:
    """``dvc repro`` in a child process, so that stage commands run with :func:`dvc_env` (this process's PATH is
    never changed); returns the names of the stages that actually ran."""
    proc = run_dvc(project_dir, "repro", *targets)
    return re.findall(r"Running stage '([^']+)'", proc.stdout)


def ensure_project(settings: Settings) -> Path:
    """Make ``settings.project_dir`` a DVC project (``dvc init`` if needed) and configure cache + remote."""
    project = settings.project_dir
    if not project.is_dir():
        raise DvcError(f"project directory {project} does not exist (set MEDPIPE_PROJECT_DIR)")
    with dvc_lock(project):
        if not (project / ".dvc").is_dir():
            from dvc.exceptions import DvcException
            from dvc.repo import Repo

            flags = _init_flags(project)
            try:
                Repo.init(str(project), no_scm="--no-scm" in flags, subdir="--subdir" in flags).close()
            except DvcException as err:
                raise DvcError(f"`dvc init` failed in {project}: {err}") from err
        configure(settings)
    return project


def _init_flags(project: Path) -> list[str]:
    proc = subprocess.run(
        ["git", "-C", str(project), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return ["--no-scm"]
    return [] if Path(proc.stdout.strip()).resolve() == project.resolve() else ["--subdir"]


CACHE_TYPE = "reflink,hardlink,copy"


def configure(settings: Settings) -> None:
    """Point the cache at ``settings.dvc_cache_dir`` and the default remote at ``settings.dvc_remote_url``
    in ``.dvc/config.local`` (machine-local, not committed).

    ``cache.type`` links the workspace to the cache instead of copying every file into it (:data:`CACHE_TYPE`:
    a reflink, else a hard link, else a copy across file systems): ``dvc add data/raw`` and the prepare stage's
    output then cost no second copy, and an unchanged file keeps its inode, so DVC's state answers its md5
    without reading it. It is safe here because nothing edits a tracked file in place: ingest and prepare
    write a new folder and swap it in, and DVC makes linked files read-only."""
    from dvc.config import Config

    url = settings.dvc_remote_url
    if "://" not in url:
        Path(url).mkdir(parents=True, exist_ok=True)
    with dvc_lock(settings.project_dir):
        config = Config(dvc_dir=str(settings.project_dir / ".dvc"), validate=False)
        with config.edit("local") as conf:
            conf.setdefault("cache", {})["dir"] = str(settings.dvc_cache_dir)
            conf["cache"].setdefault("type", CACHE_TYPE)  # a user's own choice stays
            conf.setdefault("remote", {})[REMOTE_NAME] = {"url": url}
            conf.setdefault("core", {})["remote"] = REMOTE_NAME
