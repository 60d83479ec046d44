"""What a decoder hands on, and the two checks every decoder applies (pixel budget, 8-bit policy)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medpipe.imaging.errors import ImageError
from medpipe.imaging.policy import DecodePolicy


@dataclass(frozen=True)
class Decoded:
    """One decoded image at its native size, before the model's channels and size are applied."""

    pixels: np.ndarray  # uint8 (H, W, C) with C in (1, 3), after EXIF, alpha and the high-depth policy
    format: str  # one of FORMATS
    original_size: tuple[int, int]  # (height, width) as stored
    original_channels: int  # channels (bands) in the file, alpha included
    header: dict[str, str] = field(default_factory=dict)  # whitelisted technical DICOM fields (never PHI)
    patient: str | None = None  # salted hash of the DICOM PatientID (else StudyInstanceUID), for grouping


def check_pixels(height: int, width: int, max_pixels: int, name: str) -> None:
    """Refuse empty images and images over ``max_pixels`` (from the header, before decoding)."""
    if height <= 0 or width <= 0:
        raise ImageError(name, f"image is empty ({height}x{width} pixels)", code="empty_image")
    if height * width > max_pixels:
        raise ImageError(
            name,
            f"image is {width}x{height} = {width * height} pixels, more than the limit of {max_pixels} "
            "(serving.max_pixels); downscale it first",
            code="too_many_pixels",
            status=413,
        )


def to_8bit(arr: np.ndarray, policy: DecodePolicy, name: str) -> np.ndarray:
    """Apply the high-depth policy: any numeric array -> uint8 of the same shape (uint8 is returned as is)."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ImageError(name, f"pixels of type {arr.dtype} are not numbers", code="wrong_dtype")
    values = arr.astype(np.float64)
    if not np.isfinite(values).all():
        raise ImageError(name, "the image contains NaN or infinite pixel values", code="corrupt_image")
    if policy.high_depth == "minmax":
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        scaled = np.zeros_like(values) if hi <= lo else (values - lo) / (hi - lo) * 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        scaled = values * 255.0
    else:
        scaled = values / 257.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
