"""Resolve a model URI to a ready ONNX Runtime session plus everything the API reports about it.

URIs: ``models:/<name>@<alias>`` or ``models:/<name>/<version>`` (the MLflow registry, ONNX flavour), or a
local folder holding ``model.onnx`` (or an ``MLmodel`` with an ``onnx`` flavour) and ``preprocessing.json``.
:func:`model_marker` is the cheap "has it changed?" probe the hot-reload loop polls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import yaml

from components.deploy.export import META_QUANTIZE, read_metadata
from components.deploy.runtime import active_provider, create_session, run_session
from components.registry.store import download_version, parse_registry_uri, resolve_version
from components.tracking import mlflow_client
from medpipe.config import ExportConfig
from medpipe.errors import RegistryError
from medpipe.imaging.preprocessing import FILENAME as PREPROCESSING_FILE
from medpipe.imaging.preprocessing import Preprocessing
from medpipe.settings import Settings

GATE_PREFIXES = ("parity.", "gate.", "gates.", "promotion.", "export.")


@dataclass(frozen=True)
class LoadedModel:
    """One loaded model version. Immutable: a hot reload builds a new one and swaps the reference."""

    uri: str
    name: str
    version: str
    marker: str  # what model_marker() returned when this was loaded
    session: ort.InferenceSession
    preprocessing: Preprocessing
    provider: str
    quantized: str
    source_dir: Path
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    loaded_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 (N, C, H, W) raw pixels -> (probabilities (N, K), embedding (N, D))."""
        return run_session(self.session, pixels)

    @property
    def gates(self) -> dict[str, str]:
        return {k: v for k, v in self.tags.items() if k.startswith(GATE_PREFIXES)}

    @property
    def data_version(self) -> str | None:
        return self.preprocessing.data_version or next(
            (v for k, v in self.tags.items() if k.endswith("data_version")), None
        )


def _local_dir(uri: str) -> Path:
    path = Path(uri.removeprefix("file://")).expanduser()
    if path.is_file() and path.suffix == ".onnx":
        path = path.parent
    if not path.is_dir():
        raise RegistryError(
            f"model {uri!r} is neither models:/<name>@<alias> nor a folder with model.onnx + preprocessing.json"
        )
    return path.resolve()


def _onnx_file(folder: Path) -> Path:
    mlmodel = folder / "MLmodel"
    if mlmodel.is_file():
        flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
        if "onnx" not in flavors:
            raise RegistryError(
                f"{folder} is an MLflow model without an onnx flavour; export it first (`medpipe deploy`)"
            )
        path = folder / flavors["onnx"].get("data", "model.onnx")
    else:
        path = folder / "model.onnx"
    if not path.is_file():
        raise RegistryError(f"{folder} holds no ONNX graph at {path.name}; export it first (`medpipe deploy`)")
    return path


def _preprocessing_file(folder: Path, uri: str) -> Path:
    """``preprocessing.json`` at the top level (medpipe's layout), else where mlflow's ``extra_files`` put it."""
    top = folder / PREPROCESSING_FILE
    found = top if top.is_file() else next(iter(sorted(folder.rglob(PREPROCESSING_FILE))), None)
    if found is None:
        raise RegistryError(f"{uri}: {folder} has no {PREPROCESSING_FILE}; the model cannot be served without it")
    return found


def model_marker(uri: str, settings: Settings) -> str:
    """A cheap identity of what ``uri`` points at now (registry version number, or file stamps)."""
    if parse_registry_uri(uri) is not None:
        mv = resolve_version(uri, settings)
        return f"{mv.name}/{mv.version}"
    folder = _local_dir(uri)
    parts = []
    for path in (_onnx_file(folder), _preprocessing_file(folder, uri)):
        st = path.stat()
        parts.append(f"{path.resolve()}:{st.st_mtime_ns}:{st.st_size}")
    return "|".join(parts)


def _file_version(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:12]


def load_model(uri: str, export_cfg: ExportConfig, settings: Settings) -> LoadedModel:
    """Resolve ``uri``, open an ORT session on it (warmed up once) and collect version, tags and metrics."""
    marker = model_marker(uri, settings)
    tags: dict[str, str] = {}
    metrics: dict[str, float] = {}
    if parse_registry_uri(uri) is not None:
        mv = resolve_version(uri, settings)
        name, version = mv.name, str(mv.version)
        folder = download_version(name, version, settings)
        tags = dict(mv.tags or {})
        if mv.run_id:
            try:
                metrics = dict(mlflow_client(settings).get_run(mv.run_id).data.metrics)
            except Exception:  # noqa: BLE001 - metrics are informative only
                metrics = {}
    else:
        folder = _local_dir(uri)
        name = folder.name
        version = _file_version(_onnx_file(folder))
    onnx_path = _onnx_file(folder)
    pre = Preprocessing.load(_preprocessing_file(folder, uri))
    session = create_session(onnx_path, export_cfg)
    model = LoadedModel(
        uri=uri,
        name=name,
        version=version,
        marker=marker,
        session=session,
        preprocessing=pre,
        provider=active_provider(session),
        quantized=read_metadata(onnx_path).get(META_QUANTIZE, "none"),
        source_dir=folder,
        tags=tags,
        metrics=metrics,
    )
    model.run(np.zeros((1, pre.channels, pre.image_size, pre.image_size), np.float32))  # fail now, not on a request
    return model
