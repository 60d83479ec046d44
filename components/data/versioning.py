"""Data versioning with DVC: ingest a source into ``data/raw``, reproduce ``prepare``, push, pull, status.

The project directory (``settings.project_dir``) is a git + DVC repo. Raw data is tracked with
``dvc add data/raw``; the prepared data is the ``prepare`` stage's output in ``dvc.yaml``, so its md5
in ``dvc.lock`` is the **data version** every later stage tags its runs and models with.

DVC is driven through its Python API (``dvc.repo.Repo``, in-process) with every call serialised by a
file lock: two DVC commands in one repo fail on DVC's own repo lock. The cache and the default remote
are set in ``.dvc/config.local`` (never committed) from :class:`~medpipe.settings.Settings`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from components.data.dataset import MANIFEST, PreparedData, load_prepared
from components.data.prepare import PREPARE_PARAMS, VALIDATION_REPORT, prepare, prepare_params
from components.data.sources import resolve_source, stage_raw
from components.data.swap import swap_in
from components.errors import MedpipeError

if TYPE_CHECKING:
    from dvc.repo import Repo

    from medpipe.config import DataConfig
    from medpipe.settings import Settings

RAW = "data/raw"
RAW_DVC = "data/raw.dvc"
PREPARED = "data/prepared"
STAGE = "prepare"
DATA_TARGETS = (RAW_DVC, STAGE)
REMOTE_NAME = "medpipe"


class DvcError(MedpipeError):
    """A DVC command failed; the message quotes the command and DVC's own error."""


@dataclass(frozen=True)
class IngestResult(PreparedData):
    """What ``ingest_and_version`` hands on: a :class:`PreparedData` plus how it was versioned."""

    recorded: bool = True  # data_version is the prepare stage's out in dvc.lock (else: direct, see notes)
    raw_version: str | None = None  # DVC md5 of data/raw
    source: str = ""
    pushed_to: str | None = None
    skipped: int = 0
    duplicates: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DataStatus:
    """The state of the versioned data in a project (``medpipe data status``)."""

    project_dir: Path
    data_version: str | None  # md5 of data/prepared recorded in dvc.lock
    raw_version: str | None  # md5 of data/raw recorded in data/raw.dvc
    prepared_path: Path | None
    class_names: tuple[str, ...] = ()
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    changes: tuple[str, ...] = ()  # `dvc status`: workspace vs. the last versioned state
    uncommitted: tuple[str, ...] = ()  # DVC metafiles changed but not committed to git
    remote: str | None = None
    duplicates: int = 0
    skipped: int = 0

    @property
    def workspace_changed(self) -> bool:
        return bool(self.changes)


# --- locking and running DVC -----------------------------------------------------------------
_held = threading.local()


@contextmanager
def dvc_lock(project_dir: Path, timeout_s: float = 900.0) -> Iterator[None]:
    """Hold the machine-wide lock for DVC commands in ``project_dir`` (re-entrant within a thread)."""
    key = hashlib.sha256(str(Path(project_dir).resolve()).encode()).hexdigest()[:16]
    depth = getattr(_held, key, 0)
    if depth:
        setattr(_held, key, depth + 1)
        try:
            yield
        finally:
            setattr(_held, key, depth)
        return
    lock_dir = Path(tempfile.gettempdir()) / "medpipe-locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"dvc-{key}.lock", "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DvcError(
                        f"another DVC operation in {project_dir} has held the lock for over {timeout_s:.0f} s; "
                        "wait for it to finish and retry"
                    ) from None
                time.sleep(0.1)
        setattr(_held, key, 1)
        try:
            yield
        finally:
            setattr(_held, key, 0)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _stage_commands_use_this_python() -> Iterator[None]:
    """Stage commands say ``python -m ...``: put this interpreter's folder (the venv) first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    saved = os.environ.get("PATH", "")
    if saved.split(os.pathsep)[0] == bin_dir:
        yield
        return
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{saved}"
    try:
        yield
    finally:
        os.environ["PATH"] = saved


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

    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    with dvc_lock(project_dir):
        try:
            # DVC logs progress and git hints at INFO to stdout; our callers report what matters.
            with _log_level("dvc", logging.WARNING), Repo(str(project_dir)) as repo, _stage_commands_use_this_python():
                yield repo
        except DvcException as err:
            cause = f" ({err.__cause__})" if err.__cause__ else ""
            raise DvcError(f"DVC could not {action} in {project_dir}: {err}{cause}") from err


def run_dvc(project_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``dvc`` CLI (same interpreter) in ``project_dir`` under the lock, for commands without a wrapper."""
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with dvc_lock(project_dir):
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", *args], cwd=project_dir, env=env, capture_output=True, text=True
        )
    if check and proc.returncode != 0:
        output = (proc.stderr.strip() or proc.stdout.strip())[-3000:]
        raise DvcError(f"`dvc {' '.join(args)}` failed in {project_dir} (exit {proc.returncode}):\n{output}")
    return proc


# --- project setup ---------------------------------------------------------------------------
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


def configure(settings: Settings) -> None:
    """Point the cache at ``settings.dvc_cache_dir`` and the default remote at ``settings.dvc_remote_url``
    in ``.dvc/config.local`` (machine-local, not committed)."""
    from dvc.config import Config

    url = settings.dvc_remote_url
    if "://" not in url:
        Path(url).mkdir(parents=True, exist_ok=True)
    with dvc_lock(settings.project_dir):
        config = Config(dvc_dir=str(settings.project_dir / ".dvc"), validate=False)
        with config.edit("local") as conf:
            conf.setdefault("cache", {})["dir"] = str(settings.dvc_cache_dir)
            conf.setdefault("remote", {})[REMOTE_NAME] = {"url": url}
            conf.setdefault("core", {})["remote"] = REMOTE_NAME


# --- versions --------------------------------------------------------------------------------
def data_version(project_dir: Path) -> str | None:
    """The DVC md5 of ``data/prepared`` recorded in ``dvc.lock`` (None before the first ``dvc repro``)."""
    return _out_md5(Path(project_dir) / "dvc.lock", PREPARED)


def raw_version(project_dir: Path) -> str | None:
    """The DVC md5 of ``data/raw`` recorded in ``data/raw.dvc``."""
    return _out_md5(Path(project_dir) / RAW_DVC, "raw")


def _out_md5(metafile: Path, out_path: str) -> str | None:
    if not metafile.is_file():
        return None
    doc = yaml.safe_load(metafile.read_text()) or {}
    outs = doc.get("outs") if "outs" in doc else (doc.get("stages", {}).get(STAGE) or {}).get("outs")
    for out in outs or []:
        if out.get("path") == out_path:
            return out.get("md5")
    return None


def dir_md5(path: Path) -> str:
    """DVC's own content hash of a directory (the ``md5: ...dir`` it would record), without a cache."""
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem
    from dvc_objects.fs.memory import MemoryFileSystem

    odb = HashFileDB(MemoryFileSystem(global_store=False), "/odb")
    _, _, obj = build(odb, str(path), LocalFileSystem(), "md5")
    return obj.hash_info.value


def params_differences(cfg: DataConfig, project_dir: Path) -> list[str]:
    """The ``data.*`` keys the prepare stage depends on whose value differs from the project's params.yaml."""
    from medpipe.config import ConfigError, load_config

    params = Path(project_dir) / "params.yaml"
    if not _has_stage(project_dir):
        return [f"dvc.yaml in {project_dir} has no '{STAGE}' stage"]
    try:
        recorded = prepare_params(load_config(params).data)
    except ConfigError as err:
        return [str(err)]
    wanted = prepare_params(cfg)
    return [
        f"data.{k}={wanted[k]!r} (params.yaml: {recorded[k]!r})" for k in PREPARE_PARAMS if wanted[k] != recorded[k]
    ]


def _has_stage(project_dir: Path) -> bool:
    path = Path(project_dir) / "dvc.yaml"
    if not path.is_file():
        return False
    return STAGE in ((yaml.safe_load(path.read_text()) or {}).get("stages") or {})


# --- ingest ----------------------------------------------------------------------------------
def ingest_and_version(cfg: DataConfig, settings: Settings, push: bool = True) -> IngestResult:
    """Resolve ``cfg.source``, validate it, copy it to ``data/raw`` (``dvc add``), prepare it and version it.

    Validation runs on the source itself before anything in the project changes, so errors name the
    user's files and a bad dataset never replaces ``data/raw``. When ``cfg`` matches params.yaml in
    every key ``prepare`` reads, ``dvc repro prepare`` produces ``data/prepared`` and its md5 in dvc.lock
    is the data version. Otherwise (``-S data.image_size=64``, ``-S data.on_invalid=skip-and-report``)
    ``dvc repro`` could not see the change: the data is prepared directly into
    ``settings.home/prepared/<key>`` and versioned with DVC's hashing, the result says that it is not
    recorded in dvc.lock, and the workspace (data/raw, data/prepared, dvc.lock) stays on its recorded
    version, so it never mixes a new raw folder with the old prepared data.
    """
    project = settings.project_dir
    source = resolve_source(cfg.source, settings)
    if not project.is_dir():
        raise DvcError(f"project directory {project} does not exist (set MEDPIPE_PROJECT_DIR)")
    notes: list[str] = []
    # Validation with the user's file names, before anything in the project changes. It decodes only the
    # images the current version lacks, and the prepare stage below reuses its shards (dvc.yaml marks
    # data/prepared `persist`), so no image is decoded twice.
    with tempfile.TemporaryDirectory(prefix=".medpipe-validate-", dir=project) as tmp:
        validated = Path(tmp) / "prepared"
        with _log_level(prepare.__module__, logging.ERROR):
            prepare(source, validated, cfg, reuse_from=(project / PREPARED,))
        with dvc_lock(project):
            ensure_project(settings)
            differences = params_differences(cfg, project)
            staging = project / ".dvc" / "tmp" / f"medpipe-raw-{uuid.uuid4().hex[:8]}"
            try:
                stage_raw(source, staging)
                if differences:  # a side version: the workspace keeps its recorded one
                    raw = dir_md5(staging)
                    path = _prepare_direct(staging, settings, cfg, raw, validated)
                else:
                    _replace_dir(staging, project / RAW)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            if not differences:
                with open_repo(project, f"track {RAW}") as repo:
                    repo.add(RAW)
                raw = raw_version(project)
                _replace_dir(validated, project / PREPARED)
                with open_repo(project, f"reproduce the {STAGE} stage") as repo:
                    repo.reproduce(STAGE)
                version, path, recorded = data_version(project), project / PREPARED, True
                notes.append(f"commit {RAW_DVC}, data/.gitignore and dvc.lock to record this version in git")
            else:
                version, recorded = dir_md5(path), False
                notes.append(
                    "not recorded in dvc.lock (the workspace data is unchanged): the effective data config differs "
                    "from params.yaml in " + "; ".join(differences) + ". Put these values in params.yaml and ingest "
                    "again to version it (and push it)."
                )
            pushed = None
            if push and recorded:
                pushed = _push(settings, DATA_TARGETS)
    prepared = load_prepared(path, data_version=version)
    manifest = json.loads((path / MANIFEST).read_text())
    return IngestResult(
        path=prepared.path,
        class_names=prepared.class_names,
        counts=prepared.counts,
        image_size=prepared.image_size,
        channels=prepared.channels,
        data_version=version,
        recorded=recorded,
        raw_version=raw,
        source=source.origin or str(source.path),
        pushed_to=pushed,
        skipped=len(manifest.get("skipped", [])),
        duplicates=int(manifest.get("duplicates", {}).get("count", 0)),
        notes=tuple(notes),
    )


def _replace_dir(new: Path, target: Path) -> None:
    """Swap ``new`` into ``target`` atomically (see :mod:`components.data.swap`); the old copy is deleted."""
    swap_in(new, target)


def _prepare_direct(raw_dir: Path, settings: Settings, cfg: DataConfig, raw: str | None, validated: Path) -> Path:
    code = hashlib.sha256()
    for module in sorted(Path(__file__).parent.glob("*.py")):
        code.update(module.read_bytes())
    key_blob = json.dumps({"raw": raw, "params": prepare_params(cfg), "code": code.hexdigest()}, sort_keys=True)
    out = settings.home / "prepared" / hashlib.sha256(key_blob.encode()).hexdigest()[:16]
    if not (out / MANIFEST).is_file():
        prepare(raw_dir, out, cfg, reuse_from=(validated,))
    return out


# --- remote ----------------------------------------------------------------------------------
def push(settings: Settings, targets: Sequence[str] = DATA_TARGETS) -> str:
    """``dvc push`` the data targets to the configured remote; returns the remote URL."""
    ensure_project(settings)
    return _push(settings, targets)


def _push(settings: Settings, targets: Sequence[str]) -> str:
    """Push, then check that the remote holds every object of ``targets``: DVC only warns about data that is
    in neither the cache nor the remote, and a push of nothing would otherwise read as a success."""
    url = settings.dvc_remote_url
    with open_repo(settings.project_dir, f"push {', '.join(targets)} to {url}") as repo:
        repo.push(targets=list(targets), remote=REMOTE_NAME)
        missing = _missing_in_remote(repo, targets)
    if missing:
        raise DvcError(
            f"push to {url} did not store all the data: missing {'; '.join(missing)}. These objects are not in the "
            f"local DVC cache ({settings.dvc_cache_dir}) either: restore the cache (`medpipe data pull` from a "
            "remote that has them) or re-ingest the source, then push again"
        )
    return url


def _missing_in_remote(repo: Repo, targets: Sequence[str]) -> list[str]:
    """The outputs of ``targets`` whose objects (directory listing or files) the remote lacks."""
    from dvc_data.hashfile.tree import Tree

    odb = repo.cloud.get_remote_odb(REMOTE_NAME)
    missing = []
    for target in targets:
        for stage in repo.stage.collect(target):
            for out in stage.outs:
                info = out.hash_info
                if not info or not info.value:
                    continue
                if not odb.exists(info.value):
                    missing.append(f"{out} (all of it: object {info.value})")
                elif info.isdir:
                    oids = [entry.value for _, _, entry in Tree.load(odb, info)]
                    if absent := len(oids) - len(odb.oids_exist(oids)):
                        missing.append(f"{out} ({absent} of {len(oids)} files)")
    return missing


def pull(settings: Settings, targets: Sequence[str] = DATA_TARGETS) -> None:
    """``dvc pull`` the data targets from the configured remote into the cache and the workspace."""
    ensure_project(settings)
    with open_repo(settings.project_dir, f"pull {', '.join(targets)} from {settings.dvc_remote_url}") as repo:
        repo.pull(targets=list(targets), remote=REMOTE_NAME)


def checkout(settings: Settings, targets: Sequence[str] = DATA_TARGETS) -> None:
    """``dvc checkout --force``: make the workspace data match the versions in data/raw.dvc and dvc.lock
    (e.g. after ``git checkout <rev> -- data/raw.dvc dvc.lock`` to go back to an older dataset)."""
    ensure_project(settings)
    with open_repo(settings.project_dir, f"check out {', '.join(targets)}") as repo:
        repo.checkout(targets=list(targets), force=True)


def repro(settings: Settings, *targets: str) -> list[str]:
    """``dvc repro`` (default: the prepare stage); returns the names of the stages that actually ran."""
    ensure_project(settings)
    with open_repo(settings.project_dir, f"reproduce {', '.join(targets or (STAGE,))}") as repo:
        ran = repo.reproduce(list(targets or (STAGE,)))
    return [getattr(stage, "name", None) or str(stage) for stage in ran or []]


# --- status ----------------------------------------------------------------------------------
def data_status(settings: Settings) -> DataStatus:
    """Current data version, class counts per split, and what differs from the last versioned state."""
    project = settings.project_dir
    version, raw = data_version(project), raw_version(project)
    prepared = project / PREPARED
    manifest: dict[str, Any] = {}
    if (prepared / MANIFEST).is_file():
        manifest = json.loads((prepared / MANIFEST).read_text())
    changes: list[str] = []
    targets = [t for t, ok in ((RAW_DVC, raw is not None), (STAGE, version is not None)) if ok]
    if (project / ".dvc").is_dir() and targets:
        with open_repo(project, "compute the data status") as repo:
            changes = _describe_changes(repo.status(targets=targets))
    return DataStatus(
        project_dir=project,
        data_version=version,
        raw_version=raw,
        prepared_path=prepared if manifest else None,
        class_names=tuple(manifest.get("class_names", ())),
        counts=manifest.get("counts", {}),
        source=manifest.get("source", {}),
        changes=tuple(changes),
        uncommitted=tuple(_git_uncommitted(project)),
        remote=_configured_remote(project),
        duplicates=int(manifest.get("duplicates", {}).get("count", 0)),
        skipped=len(manifest.get("skipped", [])),
    )


def _describe_changes(status: dict[str, Any]) -> list[str]:
    lines = []
    for target, entries in sorted(status.items()):
        for entry in entries:
            if isinstance(entry, str):
                lines.append(f"{target}: {entry}")
                continue
            for kind, items in entry.items():
                lines.append(f"{target}: {kind}: {_flatten(items)}")
    return lines


def _flatten(items: Any) -> str:
    """``{"params.yaml": {"data.image_size": "modified"}}`` -> ``"params.yaml:data.image_size (modified)"``."""
    if not isinstance(items, dict):
        return str(items)
    parts = []
    for path, state in items.items():
        if isinstance(state, dict):
            parts.extend(f"{path}:{key} ({value})" for key, value in state.items())
        else:
            parts.append(f"{path} ({state})")
    return ", ".join(parts)


def _git_uncommitted(project: Path) -> list[str]:
    files = [RAW_DVC, "dvc.lock", "dvc.yaml", "params.yaml"]
    proc = subprocess.run(
        ["git", "-C", str(project), "status", "--porcelain", "--", *files], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return []
    return [line[3:] for line in proc.stdout.splitlines() if line.strip()]


def _configured_remote(project: Path) -> str | None:
    if not (project / ".dvc").is_dir():
        return None
    from dvc.config import Config

    try:
        conf = Config(dvc_dir=str(project / ".dvc"), validate=False).load_one("local")
    except Exception:  # noqa: BLE001 - status must not fail on an odd config
        return None
    return (conf.get("remote", {}).get(REMOTE_NAME) or {}).get("url")


def validation_report(prepared: Path) -> Path:
    """Where the list of skipped files for a prepared folder is."""
    return Path(prepared) / VALIDATION_REPORT


def summary_markdown(result: PreparedData) -> str:
    """A short Markdown summary (data version + class counts per split) for Prefect artifacts and reports."""
    splits = list(result.counts)
    lines = [
        f"**Data version** `{result.data_version or 'unversioned'}`  ",
        f"{len(result.class_names)} classes, {result.image_size}x{result.image_size}x{result.channels}  ",
        "",
        "| class | " + " | ".join(splits) + " |",
        "|---|" + "---:|" * len(splits),
    ]
    for name in result.class_names:
        lines.append(f"| {name} | " + " | ".join(str(result.counts[s].get(name, 0)) for s in splits) + " |")
    totals = [str(sum(result.counts[s].values())) for s in splits]
    lines.append("| **total** | " + " | ".join(totals) + " |")
    for note in getattr(result, "notes", ()):
        lines.append(f"\n> {note}")
    return "\n".join(lines) + "\n"
