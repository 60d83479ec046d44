"""Decode one image file and convert it to the configured channels and size (pure functions).

Every failure is an :class:`InvalidImage` whose ``reason`` says what is wrong in words a user can
act on ("zero-byte file", "truncated image", ...); the caller adds the file name and applies the
``data.on_invalid`` policy.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from components.data.sources import IMAGE_EXTENSIONS

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never a silently grey image
_HIGH_DEPTH = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})


class InvalidImage(Exception):
    """A file that cannot be used as an image; ``reason`` is a short, user-facing explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_extension(path: Path) -> None:
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        allowed = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise InvalidImage(f"not an image file (extension {path.suffix or '(none)'!r}; expected one of {allowed})")


def decode(data: bytes) -> Image.Image:
    """Fully decode image bytes (so truncation is caught here, not later)."""
    if not data:
        raise InvalidImage("zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
    except UnidentifiedImageError:
        raise InvalidImage("not an image file (content is not a recognised image format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InvalidImage(f"image too large to decode safely ({err})") from None
    except OSError as err:
        if "truncated" in str(err).lower():
            raise InvalidImage(f"truncated image ({err})") from None
        raise InvalidImage(f"corrupt or unreadable image ({err})") from None
    except (SyntaxError, ValueError, EOFError, struct.error) as err:
        raise InvalidImage(f"corrupt or unreadable image ({type(err).__name__}: {err})") from None
    return image


def to_mode(image: Image.Image, channels: int) -> Image.Image:
    """Convert any PIL mode (16-bit and float included) to ``L`` (channels=1) or ``RGB`` (channels=3)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in _HIGH_DEPTH:
        # 16-bit / float medical images: stretch each image's own range to 0..255.
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scaled = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        image = Image.fromarray(np.round(scaled).astype(np.uint8))
    elif image.mode not in ("L", "RGB"):
        image = image.convert("RGBA" if "A" in image.getbands() or image.mode == "P" else "RGB")
        if image.mode == "RGBA":
            background = Image.new("RGB", image.size, (0, 0, 0))
            background.paste(image, mask=image.getchannel("A"))
            image = background
    return image.convert("L" if channels == 1 else "RGB")


def to_array(image: Image.Image, channels: int, size: int) -> np.ndarray:
    """``(size, size, channels)`` uint8 pixels; resized with bilinear (antialiased) filtering."""
    image = to_mode(image, channels)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(image, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def convert_array(images: np.ndarray, channels: int, size: int) -> np.ndarray:
    """Convert an ``(N, H, W[, C])`` uint8 stack to ``(N, size, size, channels)`` uint8."""
    if images.ndim == 3:
        images = images[..., None]
    have = images.shape[-1]
    if have == 3 and channels == 1:
        rgb = images.astype(np.float32)
        grey = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        images = np.clip(np.round(grey), 0, 255).astype(np.uint8)[..., None]
    elif have == 1 and channels == 3:
        images = np.repeat(images, 3, axis=-1)
    if images.shape[1:3] != (size, size):
        out = np.empty((len(images), size, size, channels), dtype=np.uint8)
        for i, img in enumerate(images):
            pil = Image.fromarray(img[..., 0] if channels == 1 else img)
            resized = np.asarray(pil.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
            out[i] = resized[..., None] if channels == 1 else resized
        images = out
    return np.ascontiguousarray(images)
