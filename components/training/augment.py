"""Batched, on-device augmentation: pure functions do the work, :class:`BatchAugment` draws the randomness.

``torchvision.transforms.v2`` transforms draw one set of random parameters per call, so applied to a
batch tensor they would augment every image identically; here each image gets its own parameters and
the whole batch is warped in one ``affine_grid``/``grid_sample`` call on the training device.
All functions take float images (N, C, H, W) on the 0..1 scale and return the same shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from medpipe.config import AugmentConfig

# --- pure functions (deterministic given their parameters) -------------------------------------


def flip(x: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Flip the images where ``mask`` (N,) is true along ``dim`` (-1 horizontal, -2 vertical)."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(dim), x)


def affine(
    x: torch.Tensor, angle_deg: torch.Tensor, translate: torch.Tensor, scale: torch.Tensor, crop: torch.Tensor
) -> torch.Tensor:
    """Per-image rotation (N,), translation (N, 2) as a fraction of the size, zoom (N,) and crop scale (N,).

    ``crop`` < 1 zooms into a window of that side fraction (random resized crop); reflection padding
    keeps borders free of black wedges.
    """
    a = angle_deg * math.pi / 180.0
    s = crop / scale  # sampling grid scale: >1 shrinks the image, <1 zooms in
    cos, sin = torch.cos(a) * s, torch.sin(a) * s
    theta = torch.stack(
        [torch.stack([cos, -sin, translate[:, 0] * 2], dim=1), torch.stack([sin, cos, translate[:, 1] * 2], dim=1)],
        dim=1,
    )
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def brightness_contrast(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    """Multiply brightness by (N,) factors and stretch contrast around each image's mean by (N,) factors."""
    x = x * brightness.view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * contrast.view(-1, 1, 1, 1) + mean).clamp(0.0, 1.0)


def mixup(
    x: torch.Tensor, y_onehot: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each image/target with ``perm``'s partner using per-image weights ``lam`` (N,)."""
    lx = lam.view(-1, 1, 1, 1).to(x.dtype)
    ly = lam.view(-1, 1).to(y_onehot.dtype)
    return x * lx + x[perm] * (1 - lx), y_onehot * ly + y_onehot[perm] * (1 - ly)


# --- the randomness ----------------------------------------------------------------------------


@dataclass
class BatchAugment:
    """Draws per-image parameters from a seeded generator and applies the pure functions above."""

    cfg: AugmentConfig
    seed: int = 0

    def __post_init__(self) -> None:
        self._gen: torch.Generator | None = None

    @property
    def enabled(self) -> bool:
        c = self.cfg
        return any(
            [c.hflip, c.vflip, c.rotate_degrees, c.translate, c.scale, c.brightness, c.contrast, c.random_resized_crop]
        )

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._gen is None or self._gen.device != device:
            self._gen = torch.Generator(device=device)
            self._gen.manual_seed(self.seed)
        return self._gen

    def _uniform(self, n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
        return torch.rand(n, generator=self._gen, device=device) * (high - low) + low

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float 0..1 -> augmented images of the same shape."""
        c, n, dev = self.cfg, x.shape[0], x.device
        self._generator(dev)
        if c.hflip:
            x = flip(x, torch.rand(n, generator=self._gen, device=dev) < c.hflip, -1)
        if c.vflip:
            x = flip(x, torch.rand(n, generator=self._gen, device=dev) < c.vflip, -2)
        if c.rotate_degrees or c.translate or c.scale or c.random_resized_crop:
            angle = self._uniform(n, -c.rotate_degrees, c.rotate_degrees, dev)
            shift = torch.rand(n, 2, generator=self._gen, device=dev) * 2 * c.translate - c.translate
            scale = self._uniform(n, 1 - c.scale, 1 + c.scale, dev)
            crop = (
                self._uniform(n, c.random_resized_crop, 1.0, dev).sqrt()
                if c.random_resized_crop
                else torch.ones(n, device=dev)
            )
            x = affine(x, angle, shift, scale, crop)
        if c.brightness or c.contrast:
            b = self._uniform(n, 1 - c.brightness, 1 + c.brightness, dev)
            k = self._uniform(n, 1 - c.contrast, 1 + c.contrast, dev)
            x = brightness_contrast(x, b, k)
        return x

    def draw_mixup(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(lam (N,), permutation (N,)) for mixup, or None when ``mixup_alpha`` is 0."""
        if not self.cfg.mixup_alpha:
            return None
        self._generator(device)
        alpha = torch.tensor(float(self.cfg.mixup_alpha))
        lam = torch.distributions.Beta(alpha, alpha).sample((n,)).to(device)
        perm = torch.randperm(n, generator=self._gen, device=device)
        return lam, perm
