"""Export a trained model folder to one self-contained ONNX file (raw pixels in, probabilities + embedding out).

The graph wraps :class:`~components.models.inference.InferenceModel`, so resize and normalisation
live inside it; ``preprocessing.json`` is written next to the file and also embedded in the ONNX
metadata, so a client (or the server) never repeats the values.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import onnx
import torch

from components.deploy.runtime import INPUT_NAME, OUTPUT_NAMES, DeployError
from components.models.artifacts import load_model_dir
from components.models.inference import InferenceModel
from medpipe.config import ExportConfig
from medpipe.imaging.preprocessing import Preprocessing

META_PREPROCESSING = "medpipe.preprocessing"
META_QUANTIZE = "medpipe.quantize"


def export_onnx(model_dir: Path, out_path: Path, cfg: ExportConfig) -> Path:
    """Export the model in ``model_dir`` to ``out_path`` (fp32, dynamic batch axis, external_data=False).

    Input ``pixels``: float32 (N, C, H, W), raw 0..255 at ``preprocessing.image_size``.
    Outputs ``probabilities`` (N, K) and ``embedding`` (N, D). ``onnx.checker`` must pass.
    ``cfg`` is taken for symmetry with the other deploy stages (quantisation is :mod:`.quantize`).
    """
    model_dir, out_path = Path(model_dir), Path(out_path)
    try:
        net, pre = load_model_dir(model_dir)
    except FileNotFoundError as err:
        raise DeployError(f"cannot export {model_dir}: {err}; pass a folder written by training") from None
    model = InferenceModel(net, pre).eval()
    example = torch.rand(2, pre.channels, pre.image_size, pre.image_size) * 255.0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(out_path),
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},),
            external_data=False,
            dynamo=True,
        )
    stray = out_path.with_name(out_path.name + ".data")
    if stray.exists():
        raise DeployError(f"export of {model_dir} wrote external data {stray}; the model must be self-contained")
    proto = onnx.load(str(out_path))
    set_metadata(proto, {META_PREPROCESSING: pre.model_dump_json(), META_QUANTIZE: "none"})
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(out_path))
    if out_path.parent.resolve() != model_dir.resolve():
        pre.save(out_path.parent)
    return out_path


def set_metadata(proto: onnx.ModelProto, values: dict[str, str]) -> None:
    """Set (replace) string metadata properties on an ONNX model in place."""
    keep = [p for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in values.items():
        proto.metadata_props.add(key=key, value=value)


def read_metadata(onnx_path: Path) -> dict[str, str]:
    """The string metadata of an ONNX file (reads the graph too; fine for the models we ship)."""
    proto = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def preprocessing_for(onnx_path: Path) -> Preprocessing:
    """The preprocessing of an exported model: ``preprocessing.json`` beside it, else the embedded copy."""
    onnx_path = Path(onnx_path)
    beside = onnx_path.parent / "preprocessing.json"
    if beside.is_file():
        return Preprocessing.load(beside)
    meta = read_metadata(onnx_path)
    if META_PREPROCESSING not in meta:
        raise DeployError(f"{onnx_path} has no preprocessing.json beside it and none embedded; re-export it")
    return Preprocessing.model_validate(json.loads(meta[META_PREPROCESSING]))
