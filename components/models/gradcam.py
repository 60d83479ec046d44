"""Grad-CAM (captum) of a deployable network: the one implementation behind ``POST /v1/explain``,
``medpipe predict --explain`` and the faithfulness score computed at registration.

Grad-CAM runs on the last convolution of the backbone, on raw pixels (the model's own resize and
normalisation), explains the log-probability of the target class and is upsampled to the image size.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from components.models.inference import InferenceModel, to_pixels


@dataclass(frozen=True)
class Explanation:
    target: int  # the class explained
    probabilities: np.ndarray  # (K,) of the PyTorch flavour
    heatmap: np.ndarray  # float32 (H, W) in 0..1, the image's size
    overlay_png: bytes  # the heatmap over the image (RGB PNG)


def last_conv(net: nn.Module) -> nn.Module | None:
    """The layer Grad-CAM reads (the last ``Conv2d``), or None when the network has none."""
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def grad_cams(
    model: InferenceModel, images: np.ndarray, targets: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grad-CAM of uint8 (N, H, W, C) images in one batch.

    Returns (probabilities (N, K), targets (N,) — the predicted classes unless given —, heatmaps float32
    (N, H, W), each scaled to 0..1 by its own maximum)."""
    from captum.attr import LayerAttribution, LayerGradCam

    layer = last_conv(model.net)
    if layer is None:
        raise ValueError("the network has no convolution layer for Grad-CAM")
    pixels = to_pixels(images)

    def log_probs(x: torch.Tensor) -> torch.Tensor:
        return torch.log(model(x)[0].clamp_min(1e-12))

    with torch.no_grad():
        probs = model(pixels)[0].numpy()
    chosen = probs.argmax(axis=1) if targets is None else np.asarray(targets, dtype=np.int64)
    cam = LayerGradCam(log_probs, layer).attribute(pixels, target=torch.from_numpy(chosen), relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, images.shape[1:3], interpolate_mode="bilinear")[:, 0].detach().numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1)[:, None, None]
    heatmaps = np.where(peak > 0, cam / np.where(peak > 0, peak, 1.0), cam).astype(np.float32)
    return probs, chosen, heatmaps


def grad_cam(model: InferenceModel, image: np.ndarray, target: int | None = None) -> Explanation:
    """Grad-CAM of ``target`` (default: the predicted class) for one uint8 (H, W, C) image, with its overlay."""
    probs, chosen, heatmaps = grad_cams(model, image[None], None if target is None else [target])
    return Explanation(int(chosen[0]), probs[0], heatmaps[0], overlay_png(image, heatmaps[0]))


def overlay_png(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> bytes:
    """The heatmap (jet colours) blended over the grey image, as an RGB PNG."""
    from matplotlib import colormaps
    from PIL import Image

    grey = image.mean(axis=2, keepdims=True) if image.shape[2] != 1 else image.astype(np.float32)
    base = np.repeat(grey, 3, axis=2).astype(np.float32)
    colour = colormaps["jet"](heatmap)[..., :3] * 255.0
    blended = np.clip((1 - alpha) * base + alpha * colour, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(blended, mode="RGB").save(buf, format="PNG")
    return buf.getvalue()
