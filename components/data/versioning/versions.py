"""Data versions: the md5s DVC recorded for ``data/raw`` and ``data/prepared``, and DVC's hash of any folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from components.data.prepare import PREPARE_PARAMS, prepare_params
from components.data.versioning.repo import PREPARED, RAW_DVC, STAGE

if TYPE_CHECKING:
    from medpipe.config import DataConfig


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
