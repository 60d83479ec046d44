"""Image corruptions in the spirit of MedMNIST-C, each at 5 severities, on uint8 (N, H, W, C) images.

Severity parameters were picked for 28 px grey ultrasound (BreastMNIST): 1 is barely visible, 5 is gross.
"""

from __future__ import annotations

import io

import numpy as np


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def gaussian_blur(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    sigma = [0.4, 0.6, 0.8, 1.0, 1.5][s - 1]
    return _u8(gaussian_filter(x.astype(np.float32), sigma=(0, sigma, sigma, 0)))


def gaussian_noise(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    sigma = [0.02, 0.04, 0.06, 0.08, 0.12][s - 1] * 255
    return _u8(x.astype(np.float32) + rng.normal(0, sigma, x.shape))


def brightness(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    shift = [0.03, 0.06, 0.1, 0.15, 0.2][s - 1] * 255
    return _u8(x.astype(np.float32) + shift)


def contrast(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    factor = [0.85, 0.7, 0.55, 0.4, 0.3][s - 1]
    x = x.astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return _u8((x - mean) * factor + mean)


def jpeg(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    quality = [60, 40, 25, 15, 8][s - 1]
    out = np.empty_like(x)
    for i, img in enumerate(x):
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="JPEG", quality=quality)
        dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
        out[i] = dec[..., None] if dec.ndim == 2 else dec
    return out


def pixelate(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    factor = [0.9, 0.8, 0.7, 0.6, 0.5][s - 1]
    h, w = x.shape[1:3]
    small = (max(1, int(w * factor)), max(1, int(h * factor)))
    out = np.empty_like(x)
    for i, img in enumerate(x):
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        dec = np.asarray(pil.resize(small, Image.BOX).resize((w, h), Image.NEAREST))
        out[i] = dec[..., None] if dec.ndim == 2 else dec
    return out


def gamma(x: np.ndarray, s: int, rng: np.random.Generator) -> np.ndarray:
    g = [1.1, 1.2, 1.35, 1.5, 1.8][s - 1]
    return _u8(255.0 * (x.astype(np.float32) / 255.0) ** g)


CORRUPTIONS = {
    "gaussian_blur": gaussian_blur,
    "gaussian_noise": gaussian_noise,
    "brightness": brightness,
    "contrast": contrast,
    "jpeg": jpeg,
    "pixelate": pixelate,
    "gamma": gamma,
}
