"""ONNX Runtime sessions: providers chosen from what really runs here, verified after creation.

``onnxruntime.get_available_providers()`` lists CUDA and TensorRT even on a machine without a GPU,
and a session asked for CUDA silently falls back to CPU. So we only ask for a GPU provider when its
libraries load, then read ``session.get_providers()`` to learn what actually runs.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnxruntime as ort

from medpipe.config import ExportConfig
from medpipe.errors import MedpipeError

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PREFERENCE = (TENSORRT, CUDA, CPU)
INPUT_NAME = "pixels"
OUTPUT_NAMES = ("probabilities", "embedding")

_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class DeployError(MedpipeError):
    """An ONNX model that cannot be run the way the config asks (missing file, no GPU, ...)."""


def _loadable(*libs: str) -> bool:
    for lib in libs:
        try:
            ctypes.CDLL(lib)
        except OSError:
            continue
        return True
    return False


@lru_cache(maxsize=1)
def usable_providers() -> tuple[str, ...]:
    """Providers worth asking for, best first: GPU ones only when the driver (and TensorRT) libraries load."""
    available = set(ort.get_available_providers())
    gpu_driver = _loadable("libcuda.so.1", "libcuda.so", "nvcuda.dll")
    usable = []
    if gpu_driver and TENSORRT in available and _loadable("libnvinfer.so.10", "libnvinfer.so"):
        usable.append(TENSORRT)
    if gpu_driver and CUDA in available:
        usable.append(CUDA)
    usable.append(CPU)
    return tuple(usable)


def _session_options(cfg: ExportConfig) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cfg.intra_op_threads
    opts.inter_op_num_threads = cfg.inter_op_threads
    opts.graph_optimization_level = _OPT_LEVELS[cfg.graph_optimization]
    opts.log_severity_level = 3
    return opts


def create_session(onnx_path: Path, cfg: ExportConfig) -> ort.InferenceSession:
    """An ORT session on the best usable provider (``cfg.providers`` narrows the choice).

    Raises when ``cfg.require_gpu`` is set and the session ended up on CPU only.
    """
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise DeployError(f"ONNX file {onnx_path} not found; run `medpipe deploy` to export the model first")
    wanted = [p for p in PREFERENCE if p in usable_providers()]
    if cfg.providers is not None:
        wanted = [p for p in cfg.providers if p in wanted] or [CPU]
    if CPU not in wanted:
        wanted.append(CPU)  # keep a valid fallback so ORT can place every node; checked below
    if cfg.require_gpu and wanted == [CPU]:
        raise DeployError(
            f"export.require_gpu is true but no GPU provider is usable here (asked: {cfg.providers or 'auto'}; "
            f"usable: {list(usable_providers())}); run on a GPU machine or set export.require_gpu=false"
        )
    session = ort.InferenceSession(str(onnx_path), sess_options=_session_options(cfg), providers=wanted)
    active = session.get_providers()
    if cfg.require_gpu and active[0] == CPU:
        raise DeployError(
            f"export.require_gpu is true but ONNX Runtime fell back to CPU for {onnx_path} "
            f"(asked {wanted}, got {active}); check the CUDA/cuDNN libraries or set export.require_gpu=false"
        )
    return session


def active_provider(session: ort.InferenceSession) -> str:
    """The provider that runs the graph (the first one ORT kept)."""
    return session.get_providers()[0]


def run_session(session: ort.InferenceSession, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 (N, C, H, W) raw pixels 0..255 -> (probabilities (N, K), embedding (N, D))."""
    probs, emb = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(pixels, dtype=np.float32)})
    return probs, emb
