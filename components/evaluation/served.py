"""The served graph on a split: ONNX Runtime probabilities, and the operating point chosen on validation.

The operating point is part of the model: it is chosen once, after export, on the validation split's predictions
of the exported graph, then written into the preprocessing record beside the graph and into its metadata, where
serving, ``medpipe predict``, the gate and the card read it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.data.batches import SplitBatches, array_batches, split_batches
from components.data.dataset import read_manifest
from components.deploy.export import META_PREPROCESSING, preprocessing_for, set_metadata
from components.deploy.runtime import create_session, run_session
from components.models.inference import to_pixels
from medpipe import metrics as mx
from medpipe.config import ExportConfig, RegistryConfig
from medpipe.errors import GateError
from medpipe.imaging.preprocessing import Preprocessing


def served_probabilities(onnx_path: Path, images: np.ndarray | SplitBatches, cfg: ExportConfig) -> np.ndarray:
    """(N, K) probabilities of the graph at ``onnx_path`` on uint8 (N, H, W, C) images or a split's batches
    (streamed: one batch in memory), exactly as served; rows in the split's index order."""
    batches = images if isinstance(images, SplitBatches) else array_batches(images)
    if not len(batches):
        return np.zeros((0, 0))
    session = create_session(Path(onnx_path), cfg)
    probs = batches.scatter((b.positions, run_session(session, to_pixels(b.images).numpy())[0]) for b in batches)
    return probs.astype(np.float64)


def decision_positive(registry: RegistryConfig, class_names: list[str], train_counts: dict[str, int]) -> int | None:
    """The class whose sensitivity is reported and thresholded: ``registry.positive_class``; unset, the rarer
    training class of binary data, and none (argmax) for multi-class data."""
    if registry.positive_class is None:
        return class_names.index(mx.rarer_class(class_names, train_counts)) if len(class_names) == 2 else None
    try:
        return mx.positive_index(registry.positive_class, class_names)
    except mx.MetricsError as err:
        raise GateError(f"{err}; set registry.positive_class in params.yaml") from None


def choose_for_graph(onnx_path: Path, prepared_dir: Path, registry: RegistryConfig, cfg: ExportConfig) -> Preprocessing:
    """The graph's preprocessing record with the operating point chosen on ``prepared_dir``'s validation split."""
    pre = preprocessing_for(onnx_path)
    val = split_batches(Path(prepared_dir), "val")
    probs = served_probabilities(onnx_path, val, cfg)
    counts = read_manifest(prepared_dir).get("counts", {}).get("train", {})
    pos = decision_positive(registry, pre.class_names, counts)
    rule, target = registry.operating_point, registry.operating_target
    if pos is None:
        op = mx.argmax_point(pre.class_names, None, f"multi-class model ({len(pre.class_names)} classes): argmax")
    else:
        op = mx.choose_operating_point(probs, val.labels, pre.class_names, pos, rule, target)
    return pre.model_copy(update={"operating_point": op})


def stamp_operating_point(
    onnx_path: Path, prepared_dir: Path, registry: RegistryConfig, cfg: ExportConfig
) -> mx.OperatingPoint:
    """Choose the operating point on validation and store it with the graph (``preprocessing.json`` beside it and
    the graph's metadata); returns it."""
    import onnx

    onnx_path = Path(onnx_path)
    pre = choose_for_graph(onnx_path, prepared_dir, registry, cfg)
    proto = onnx.load(str(onnx_path))
    set_metadata(proto, {META_PREPROCESSING: pre.model_dump_json()})
    onnx.save(proto, str(onnx_path))
    pre.save(onnx_path.parent)
    assert pre.operating_point is not None
    return pre.operating_point
