"""Optional fp16 / int8 (dynamic or static) versions of an exported fp32 graph.

The result keeps float32 inputs and outputs, carries ``medpipe.quantize`` in its metadata and goes
through the same :func:`~components.deploy.parity.check_parity`, which then gates on accuracy drop.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from components.deploy.export import META_QUANTIZE, read_metadata, set_metadata
from components.deploy.runtime import INPUT_NAME, DeployError
from components.models.inference import to_pixels

QuantMode = Literal["fp16", "int8-dynamic", "int8-static"]


class _Calibration:
    """Feeds calibration batches (float32 NCHW raw pixels) to ORT's static quantiser."""

    def __init__(self, images: np.ndarray, batch: int = 32) -> None:
        pixels = to_pixels(images).numpy()
        self._batches = iter([{INPUT_NAME: pixels[i : i + batch]} for i in range(0, len(pixels), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:  # pragma: no cover - optional in the protocol
        pass


def _toposort(graph: onnx.GraphProto) -> None:
    """Reorder ``graph.node`` topologically in place (ONNX requires it)."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise DeployError("fp16 graph has a cycle or a dangling input; cannot sort it")
        for n in ready:
            known.update(n.output)
        ordered += ready
        pending = [n for n in pending if all(n is not r for r in ready)]
    del graph.node[:]
    graph.node.extend(ordered)


def _untie_shared_weights(graph: onnx.GraphProto) -> None:
    """Give every node its own copy of a weight that several nodes read (a ``train.tta=true`` graph runs the
    image and its flip through the same layers): ORT's quantisers transpose/pack a weight per consumer, and a
    shared one ends up transposed for one node and wrong for the other (MatMulInteger shape error at load)."""
    weights = {t.name: t for t in graph.initializer if len(t.dims) >= 2}
    seen: set[str] = set()
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name not in weights:
                continue
            if name in seen:
                copy = onnx.TensorProto()
                copy.CopyFrom(weights[name])
                copy.name = f"{name}__{node.name or k}"
                graph.initializer.append(copy)
                node.input[k] = copy.name
            seen.add(name)


def quantize_onnx(
    onnx_path: Path, out_path: Path, mode: QuantMode, calibration_images: np.ndarray | None = None
) -> Path:
    """Write a ``mode`` version of ``onnx_path`` to ``out_path``.

    ``calibration_images``: uint8 (N, H, W, C) training images, required for ``int8-static``.
    """
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if mode == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16

        proto = convert_float_to_float16(onnx.load(str(onnx_path)), keep_io_types=True)
        _toposort(proto.graph)  # the converter appends the input Casts at the end of the node list
    else:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with tempfile.TemporaryDirectory() as tmp:
            stripped, pre = Path(tmp) / "stripped.onnx", Path(tmp) / "pre.onnx"
            proto = onnx.load(str(onnx_path))
            del proto.graph.value_info[:]  # the exporter's shape hints go stale once ORT fuses/transposes weights
            _untie_shared_weights(proto.graph)
            onnx.save(proto, str(stripped))
            quant_pre_process(str(stripped), str(pre), skip_symbolic_shape=True)
            q = Path(tmp) / "q.onnx"
            # shape inference leaves some weights untyped (the MatMul of a train.tta=true graph, which averages the
            # image and its flip): they are float32, as every weight of an exported graph
            extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
            if mode == "int8-dynamic":
                quantize_dynamic(str(pre), str(q), weight_type=QuantType.QInt8, extra_options=extra)
            elif mode == "int8-static":
                if calibration_images is None or not len(calibration_images):
                    raise DeployError("int8-static quantisation needs calibration images (the train split)")
                quantize_static(
                    str(pre),
                    str(q),
                    _Calibration(calibration_images),
                    quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    extra_options=extra,
                )
            else:
                raise DeployError(f"unknown quantisation {mode!r}; use fp16, int8-dynamic or int8-static")
            proto = onnx.load(str(q))
    set_metadata(proto, read_metadata(onnx_path) | {META_QUANTIZE: mode})
    onnx.checker.check_model(proto)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out_path))
    if (onnx_path.parent / "preprocessing.json").is_file() and out_path.parent != onnx_path.parent:
        shutil.copy(onnx_path.parent / "preprocessing.json", out_path.parent / "preprocessing.json")
    return out_path
