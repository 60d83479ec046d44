"""The deployable view of a trained network: raw pixels in, probabilities and embedding out.

Resize and normalisation live inside this module, so the ONNX graph exported from it takes raw
pixels (0..255) and a client never repeats the preprocessing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from components.models.registry import Classifier
from medpipe.imaging.preprocessing import Preprocessing


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W) to ``size`` x ``size`` (a no-op at that size)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std with per-channel (C,) statistics on the 0..1 scale."""
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def to_model_input(
    pixels: torch.Tensor,
    size: int,
    mean: torch.Tensor,
    std: torch.Tensor,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The one to-model-input function: raw (N, C, H, W) pixels 0..255 -> 0..1 -> resized to the network's
    ``size`` -> (``augment``, training only) -> normalised. Training and the exported graph both run it."""
    x = resize(pixels.float() / 255.0, size)
    if augment is not None:
        x = augment(x)
    return normalize(x, mean, std)


class InferenceModel(nn.Module):
    """(N, C, H, W) float32 raw pixels in 0..255 -> (probabilities (N, K), embedding (N, D)).

    With ``pre.tta`` the probabilities average the image and its horizontal flip (the embedding is the image's)."""

    def __init__(self, net: Classifier, pre: Preprocessing) -> None:
        super().__init__()
        self.net = net
        self.train_size = pre.train_image_size
        self.tta = pre.tta
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_model_input(pixels, self.train_size, self.mean, self.std)
        embedding = self.net.embed(x)
        probs = torch.softmax(self.net.head(embedding), dim=1)
        if self.tta:  # test-time augmentation inside the graph: what is evaluated is what is served
            flipped = self.net.head(self.net.embed(torch.flip(x, dims=[3])))
            probs = (probs + torch.softmax(flipped, dim=1)) / 2
        return probs, embedding


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) images -> float32 (N, C, H, W) raw pixels, the model's input."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float()


@torch.inference_mode()
def predict(
    model: InferenceModel, images: np.ndarray, batch_size: int = 256, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``model`` over uint8 (N, H, W, C) images; returns (probabilities (N, K), embeddings (N, D))."""
    model = model.eval().to(device)
    probs, embs = [], []
    for start in range(0, len(images), batch_size):
        p, e = model(to_pixels(images[start : start + batch_size]).to(device))
        probs.append(p.float().cpu().numpy())
        embs.append(e.float().cpu().numpy())
    return np.concatenate(probs), np.concatenate(embs)
