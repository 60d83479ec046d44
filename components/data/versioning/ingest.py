"""Ingest a dataset into the versioned workspace (``data/raw`` -> ``dvc repro prepare``), and move data versions
to and from the DVC remote."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from components.data.dataset import MANIFEST, PreparedData, load_prepared
from components.data.prepare import VALIDATION_REPORT, prepare, prepare_params, report_counts, reuse_candidates
from components.data.sources import resolve_source, stage_raw
from components.data.swap import swap_in
from components.data.versioning.repo import (
    DATA_TARGETS,
    PREPARED,
    RAW,
    RAW_DVC,
    REMOTE_NAME,
    STAGE,
    DvcError,
    _log_level,
    dvc_lock,
    ensure_project,
    open_repo,
    reproduce,
)
from components.data.versioning.versions import data_version, dir_md5, params_differences, raw_version

if TYPE_CHECKING:
    from dvc.repo import Repo

    from medpipe.config import DataConfig
    from medpipe.settings import Settings


@dataclass(frozen=True)
class IngestResult(PreparedData):
    """What ``ingest_and_version`` hands on: a :class:`PreparedData` plus how it was versioned."""

    recorded: bool = True  # data_version is the prepare stage's out in dvc.lock (else: direct, see notes)
    raw_version: str | None = None  # DVC md5 of data/raw
    source: str = ""
    pushed_to: str | None = None
    skipped: int = 0
    duplicates: int = 0
    decoded: int = 0  # images this ingest decoded (validation + prepare); images prepared before are reused
    notes: tuple[str, ...] = ()


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
    # Validation reads the user's files (errors name them) and decodes only the images data/prepared does not
    # hold yet under the same decode policy and size; dvc repro's prepare then carries its shards over.
    with tempfile.TemporaryDirectory(prefix=".medpipe-validate-", dir=_scratch(settings)) as tmp:
        with _log_level(prepare.__module__, logging.ERROR):
            validated = prepare(source, Path(tmp) / "prepared", cfg, reuse_from=reuse_candidates(project / PREPARED))
        decoded = report_counts(validated.path)[0]
        notes: list[str] = []
        with dvc_lock(project):
            ensure_project(settings)
            differences = params_differences(cfg, project)
            staging = project / ".dvc" / "tmp" / f"medpipe-raw-{uuid.uuid4().hex[:8]}"
            try:
                stage_raw(source, staging)
                if differences:  # a side version: the workspace keeps its recorded one
                    raw = dir_md5(staging)
                    path, more = _prepare_direct(staging, settings, cfg, raw, validated.path)
                    decoded += more
                else:
                    swap_in(staging, project / RAW)  # atomic: a kill leaves the old or the new folder
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            if not differences:
                with open_repo(project, f"track {RAW}") as repo:
                    repo.add(RAW)
                raw = raw_version(project)
                decoded += _reproduce_reusing(project, validated.path)
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
        decoded=decoded,
        notes=tuple(notes),
    )


def _scratch(settings: Settings) -> Path:
    """Where validation writes: the state folder when it is on the project's file system (the validated shards
    then move into place by rename), else the project folder (a dot-folder, removed afterwards)."""
    home, project = settings.home, settings.project_dir
    home.mkdir(parents=True, exist_ok=True)
    if not project.is_dir() or os.stat(home).st_dev == os.stat(project).st_dev:
        return home
    return project


def _reproduce_reusing(project: Path, validated: Path) -> int:
    """``dvc repro prepare`` with the just-validated shards beside data/prepared (see ``reuse_candidates``), so
    the stage decodes nothing validation decoded; returns how many images the stage decoded."""
    pool = reuse_candidates(project / PREPARED)[0]
    shutil.rmtree(pool, ignore_errors=True)
    shutil.move(validated, pool)  # a rename on one file system
    try:
        ran = reproduce(project, STAGE)
    finally:
        shutil.rmtree(pool, ignore_errors=True)
    return report_counts(project / PREPARED)[0] if STAGE in ran else 0


def _prepare_direct(
    raw_dir: Path, settings: Settings, cfg: DataConfig, raw: str | None, validated: Path
) -> tuple[Path, int]:
    code = hashlib.sha256()
    for module in sorted(Path(__file__).parents[1].rglob("*.py")):  # the code of components/data
        code.update(module.read_bytes())
    key_blob = json.dumps({"raw": raw, "params": prepare_params(cfg), "code": code.hexdigest()}, sort_keys=True)
    out = settings.home / "prepared" / hashlib.sha256(key_blob.encode()).hexdigest()[:16]
    if (out / MANIFEST).is_file():
        return out, 0
    prepare(raw_dir, out, cfg, reuse_from=(validated,))
    return out, report_counts(out)[0]


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
    return reproduce(settings.project_dir, *(targets or (STAGE,)))


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
