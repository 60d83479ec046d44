"""Decoded pixels -> the model's input layout: uint8 (size, size, channels).

The grey <-> RGB rule and the resize of the imaging contract live here and nowhere else:

* RGB -> grey: ITU-R 601-2 luma with PIL's integer arithmetic (``convert("L")``), so a stack converted
  here and a file converted by PIL agree to the bit;
* grey -> RGB: the channel repeated;
* resize: PIL bilinear (antialiased when shrinking) to a square ``size``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from medpipe.imaging.decode import DEFAULT_MAX_PIXELS, Decoded, decode, decode_npy_stack
from medpipe.imaging.policy import DecodePolicy


@dataclass(frozen=True)
class ImageSpec:
    """What the model takes: square ``size``, ``channels`` (1 grey or 3 RGB) and the decode policy."""

    size: int
    channels: int
    policy: DecodePolicy = field(default_factory=DecodePolicy)


@dataclass(frozen=True)
class ModelImage:
    """One file as model input, plus what monitoring and the inference log record about it."""

    array: np.ndarray  # uint8 (size, size, channels)
    original_size: tuple[int, int]  # (height, width) as stored
    original_channels: int
    format: str
    header: dict[str, str] = field(default_factory=dict)  # whitelisted technical DICOM fields (never PHI)
    patient: str | None = None  # salted patient hash (DICOM)


def to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (..., H, W, C) with C in (1, 3) -> (..., H, W, channels) by the grey <-> RGB rule."""
    have = pixels.shape[-1]
    if have == channels:
        return pixels
    if have == 3 and channels == 1:
        rgb = pixels.astype(np.uint32)
        luma = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16  # PIL's L24
        return luma.astype(np.uint8)[..., None]
    if have == 1 and channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    raise ValueError(f"cannot convert {have} channel(s) to {channels}")


def resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, C) -> (size, size, C), bilinear."""
    if pixels.shape[:2] == (size, size):
        return pixels
    grey = pixels.shape[2] == 1
    img = Image.fromarray(pixels[..., 0] if grey else pixels, "L" if grey else "RGB")
    out = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    return out[..., None] if grey else out


def conform(pixels: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 (H, W, C) decoded pixels -> contiguous uint8 (size, size, channels): channels first, then size."""
    return np.ascontiguousarray(resize(to_channels(pixels, channels), size), dtype=np.uint8)


def conform_stack(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 (N, H, W[, C]) -> (N, size, size, channels), image by image through :func:`conform`."""
    if images.ndim == 3:
        images = images[..., None]
    images = to_channels(images, channels)
    if images.shape[1:3] == (size, size):
        return np.ascontiguousarray(images)
    out = np.empty((len(images), size, size, channels), dtype=np.uint8)
    for i, img in enumerate(images):
        out[i] = resize(img, size)
    return out


def to_model_image(decoded: Decoded, spec: ImageSpec) -> ModelImage:
    """A :class:`Decoded` image at the model's size and channels."""
    return ModelImage(
        conform(decoded.pixels, spec.size, spec.channels),
        decoded.original_size,
        decoded.original_channels,
        decoded.format,
        decoded.header,
        decoded.patient,
    )


def load_image(
    data: bytes, name: str, spec: ImageSpec, *, max_pixels: int = DEFAULT_MAX_PIXELS, salt: str = ""
) -> ModelImage:
    """The imaging contract in one call: file bytes -> model input (decode, then conform)."""
    return to_model_image(decode(data, name, spec.policy, max_pixels=max_pixels, salt=salt), spec)


def load_npy_stack(
    data: bytes, name: str, spec: ImageSpec, *, max_images: int, max_pixels: int, max_total_pixels: int
) -> list[ModelImage]:
    """The imaging contract for one .npy stack of N images (:func:`decode_npy_stack`): N model inputs, each
    exactly what the same image sent as its own .npy file becomes."""
    stack = decode_npy_stack(
        data, name, spec.policy, max_images=max_images, max_pixels=max_pixels, max_total_pixels=max_total_pixels
    )
    return [to_model_image(decoded, spec) for decoded in stack]
