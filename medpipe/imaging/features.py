"""Per-image features for drift monitoring, computed the same way for training data and served images.

Pure numpy, vectorised over the batch. :func:`feature_arrays` is the one definition: the server logs its
arrays for every request (no pandas on the request path), and :func:`image_features`, the table monitoring
reads (drift reference, windows), is those same arrays as a DataFrame. Each image's features depend on that
image only: a batch gives the values its images give one by one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Columns whose distributions are compared between reference and current windows.
DRIFT_FEATURES = (
    "intensity_mean",
    "intensity_std",
    "intensity_p5",
    "intensity_p50",
    "intensity_p95",
    "contrast",
    "entropy",
    "sharpness",
    "saturated_fraction",
)
#: Acquisition columns: compared too, but usually constant (one scanner, one size).
SHAPE_FEATURES = ("original_height", "original_width", "aspect", "channels")
FEATURE_COLUMNS = DRIFT_FEATURES + SHAPE_FEATURES

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _grey(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> uint8 (N, H, W) luminance (the image itself when C == 1)."""
    if images.shape[-1] == 1:
        return images[..., 0]
    if images.shape[-1] >= 3:
        return np.clip(images[..., :3].astype(np.float32) @ _LUMA + 0.5, 0, 255).astype(np.uint8)
    return images.mean(axis=-1).round().astype(np.uint8)


def _histogram_stats(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image 256-bin histograms -> (percentiles p5/p50/p95 (N, 3), entropy in bits (N,))."""
    n = grey.shape[0]
    flat = grey.reshape(n, -1)
    offsets = (np.arange(n, dtype=np.int64) * 256)[:, None]
    hist = np.bincount((flat + offsets).ravel(), minlength=256 * n).reshape(n, 256).astype(np.float64)
    p = hist / flat.shape[1]
    cdf = np.cumsum(p, axis=1)
    pct = np.stack([(cdf < q).sum(axis=1) for q in (0.05, 0.5, 0.95)], axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(p > 0, p * np.log2(p), 0.0).sum(axis=1)
    return pct, entropy


def _laplacian_variance(grey: np.ndarray) -> np.ndarray:
    """Variance of the 4-neighbour Laplacian (valid region) per image: a blur/sharpness measure."""
    g = grey.astype(np.float32)
    if g.shape[1] < 3 or g.shape[2] < 3:
        return np.zeros(g.shape[0])
    lap = g[:, :-2, 1:-1] + g[:, 2:, 1:-1] + g[:, 1:-1, :-2] + g[:, 1:-1, 2:] - 4.0 * g[:, 1:-1, 1:-1]
    return lap.reshape(lap.shape[0], -1).var(axis=1).astype(np.float64)


def feature_arrays(
    images: np.ndarray,
    original_sizes: list[tuple[int, int]] | None = None,
    original_channels: list[int] | None = None,
) -> dict[str, np.ndarray]:
    """:data:`FEATURE_COLUMNS` -> float64 (N,) arrays, one value per image.

    ``images``: uint8 (N, H, W, C), as the model sees them. ``original_sizes``: (height, width) of each
    image before resizing (default: H, W); ``original_channels``: channels before conversion (default: C).
    Intensities are on the 0..255 scale of the luminance.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"image features expect uint8 (N, H, W, C) images, got {images.dtype} {images.shape}")
    n, h, w, c = images.shape
    if n == 0:
        return {col: np.empty(0, dtype=np.float64) for col in FEATURE_COLUMNS}
    grey = _grey(images)
    flat = grey.reshape(n, -1).astype(np.float32)
    mean = flat.mean(axis=1, dtype=np.float64)
    std = flat.std(axis=1, dtype=np.float64)
    pct, entropy = _histogram_stats(grey)
    contrast = (pct[:, 2] - pct[:, 0]) / 255.0
    saturated = ((images == 0) | (images == 255)).reshape(n, -1).mean(axis=1)
    if original_sizes is None:
        sizes = np.tile(np.array([[h, w]], dtype=np.float64), (n, 1))
    else:
        if len(original_sizes) != n:
            raise ValueError(f"original_sizes has {len(original_sizes)} entries for {n} images")
        sizes = np.asarray(original_sizes, dtype=np.float64).reshape(n, 2)
    channels = np.full(n, c, dtype=np.float64) if original_channels is None else np.asarray(original_channels, float)
    if len(channels) != n:
        raise ValueError(f"original_channels has {len(channels)} entries for {n} images")
    return {
        "intensity_mean": mean,
        "intensity_std": std,
        "intensity_p5": pct[:, 0],
        "intensity_p50": pct[:, 1],
        "intensity_p95": pct[:, 2],
        "contrast": contrast,
        "entropy": entropy,
        "sharpness": _laplacian_variance(grey),
        "saturated_fraction": saturated,
        "original_height": sizes[:, 0],
        "original_width": sizes[:, 1],
        "aspect": sizes[:, 1] / np.maximum(sizes[:, 0], 1.0),
        "channels": channels,
    }


def feature_records(arrays: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """:func:`feature_arrays` as one ``{column: float}`` dict per image (what the inference log stores)."""
    columns = [arrays[col].tolist() for col in FEATURE_COLUMNS]
    return [dict(zip(FEATURE_COLUMNS, values, strict=True)) for values in zip(*columns, strict=True)]


def image_features(
    images: np.ndarray,
    original_sizes: list[tuple[int, int]] | None = None,
    original_channels: list[int] | None = None,
) -> pd.DataFrame:
    """One row of features per image: :func:`feature_arrays` as a table, columns :data:`FEATURE_COLUMNS`."""
    return pd.DataFrame(feature_arrays(images, original_sizes, original_channels), columns=list(FEATURE_COLUMNS))
