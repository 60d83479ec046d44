"""``medpipe data status``: the current data version, class counts, and what changed since it was versioned."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.data.dataset import MANIFEST
from components.data.versioning.repo import PREPARED, RAW_DVC, REMOTE_NAME, STAGE, open_repo
from components.data.versioning.versions import data_version, raw_version

if TYPE_CHECKING:
    from medpipe.settings import Settings


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
