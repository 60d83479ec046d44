"""Grad-CAM explanations (captum) on the PyTorch flavour of the version being served.

The network comes from the same folder the ONNX graph was loaded from (``model.pt`` + ``model_config.json``:
a registered version, or a model folder after ``medpipe deploy``), so the map explains the served weights.
Grad-CAM runs on the last convolution of the backbone, on the served input (raw pixels, the graph's own
resize and normalisation), and is upsampled to the image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from components.models.artifacts import load_model_dir
from components.models.inference import InferenceModel, to_pixels
from components.serving.images import InputError
from components.serving.model_source import LoadedModel


@dataclass(frozen=True)
class Explanation:
    target: int  # the class explained
    probabilities: np.ndarray  # (K,) of the PyTorch flavour
    heatmap: np.ndarray  # float32 (S, S) in 0..1, the image's size
    overlay_png: bytes  # the heatmap over the image (RGB PNG)


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
    return InferenceModel(net, pre).eval()


def _last_conv(net: nn.Module) -> nn.Module:
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise InputError(422, "explain_unavailable", "the network has no convolution layer for Grad-CAM")
    return convs[-1]


def grad_cam(model: InferenceModel, image: np.ndarray, target: int | None = None) -> Explanation:
    """Grad-CAM of ``target`` (default: the predicted class) for one uint8 (S, S, C) image."""
    from captum.attr import LayerAttribution, LayerGradCam

    pixels = to_pixels(image[None]).requires_grad_(False)

    def log_probs(x: torch.Tensor) -> torch.Tensor:
        return torch.log(model(x)[0].clamp_min(1e-12))

    with torch.no_grad():
        probs = model(pixels)[0][0].numpy()
    target = int(probs.argmax()) if target is None else target
    cam = LayerGradCam(log_probs, _last_conv(model.net)).attribute(pixels, target=target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, image.shape[:2], interpolate_mode="bilinear")[0, 0].detach().numpy()
    heatmap = (cam / cam.max() if cam.max() > 0 else cam).astype(np.float32)
    return Explanation(target, probs, heatmap, _overlay(image, heatmap))


def _overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> bytes:
    from matplotlib import colormaps
    from PIL import Image

    grey = image.mean(axis=2, keepdims=True) if image.shape[2] != 1 else image.astype(np.float32)
    base = np.repeat(grey, 3, axis=2).astype(np.float32)
    colour = colormaps["jet"](heatmap)[..., :3] * 255.0
    blended = np.clip((1 - alpha) * base + alpha * colour, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(blended, mode="RGB").save(buf, format="PNG")
    return buf.getvalue()
