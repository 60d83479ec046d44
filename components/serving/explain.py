"""Grad-CAM explanations (captum) on the PyTorch flavour of the version being served.

The network comes from the same folder the ONNX graph was loaded from (``model.ckpt``, whose hyperparameters
rebuild it: a registered version, or a model folder after ``medpipe deploy``), so the map explains the served
weights. The Grad-CAM itself is :mod:`components.models.gradcam` (also behind the faithfulness score of
registration); :func:`write_explanations` is ``medpipe predict --explain``'s output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from components.models.artifacts import load_model_dir
from components.models.gradcam import Explanation, grad_cam, grad_cams, last_conv, overlay_png
from components.models.inference import InferenceModel
from components.serving.images import InputError
from components.serving.model_source import LoadedModel

__all__ = ["Explanation", "grad_cam", "load_explainer", "write_explanations"]


def load_explainer(model: LoadedModel) -> InferenceModel:
    """The served version's PyTorch network with its input preprocessing, or a 422 saying why there is none."""
    try:
        net, pre = load_model_dir(model.source_dir)
    except FileNotFoundError as err:
        raise InputError(
            422,
            "explain_unavailable",
            f"{model.name} v{model.version} has no PyTorch flavour beside its ONNX graph ({err}); serve a "
            "registered version or a model folder exported with `medpipe deploy`",
        ) from None
    if last_conv(net) is None:
        raise InputError(422, "explain_unavailable", "the network has no convolution layer for Grad-CAM")
    return InferenceModel(net, pre).eval()


def write_explanations(
    model: InferenceModel, images: np.ndarray, targets: np.ndarray, dests: list[Path]
) -> list[tuple[Path, Path]]:
    """Grad-CAM of uint8 (N, S, S, C) ``images`` for their ``targets`` (one batch): per image ``<dest>.gradcam.png``
    (the overlay ``/v1/explain`` returns) and ``<dest>.gradcam.npy`` (the raw float32 map, 0..1, S x S)."""
    _, _, heatmaps = grad_cams(model, images, [int(t) for t in targets])
    written = []
    for image, heatmap, dest in zip(images, heatmaps, dests, strict=True):
        dest.parent.mkdir(parents=True, exist_ok=True)
        png, npy = dest.with_name(dest.name + ".gradcam.png"), dest.with_name(dest.name + ".gradcam.npy")
        png.write_bytes(overlay_png(image, heatmap))
        np.save(npy, heatmap)
        written.append((png, npy))
    return written
