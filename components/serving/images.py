"""Untrusted image bytes -> uint8 (S, S, C) arrays the model takes, or an :class:`InputError` saying why not.

Order matters for safety: sniff the content (the extension is ignored), read only the header, refuse
too many pixels (decompression bombs) BEFORE decoding, then decode, check channels, resize.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from components.errors import MedpipeError

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"\x93NUMPY", "NPY"),
)
SUPPORTED = "PNG, JPEG, TIFF, BMP or .npy (uint8)"


class InputError(MedpipeError):
    """A request input the server refuses; ``status`` is the HTTP code, ``code`` a stable error name."""

    def __init__(self, status: int, code: str, message: str, filename: str | None = None) -> None:
        super().__init__(f"{filename}: {message}" if filename else message)
        self.status, self.code, self.message, self.filename = status, code, message, filename


@dataclass(frozen=True)
class DecodedImage:
    array: np.ndarray  # uint8 (S, S, C) at the model's image_size and channels
    original_size: tuple[int, int]  # (height, width) as sent
    original_channels: int
    format: str


def sniff(data: bytes) -> str | None:
    """The real format from the first bytes: PNG, JPEG, TIFF, BMP, NPY, or None."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    return None


def _check_pixels(height: int, width: int, max_pixels: int, filename: str) -> None:
    if height <= 0 or width <= 0:
        raise InputError(422, "empty_image", f"image is empty ({height}x{width} pixels)", filename)
    if height * width > max_pixels:
        raise InputError(
            413,
            "too_many_pixels",
            f"image is {width}x{height} = {width * height} pixels, more than serving.max_pixels={max_pixels}; "
            "downscale it before sending",
            filename,
        )


def _read_npy(data: bytes, max_pixels: int, filename: str) -> np.ndarray:
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(buf)
    except (ValueError, OSError) as err:
        raise InputError(422, "corrupt_image", f"not a readable .npy array ({err})", filename) from None
    if dtype != np.uint8:
        raise InputError(422, "wrong_dtype", f".npy array has dtype {dtype}; send uint8 pixels 0..255", filename)
    if len(shape) not in (2, 3):
        raise InputError(422, "wrong_shape", f".npy array has shape {shape}; expected (H, W) or (H, W, C)", filename)
    _check_pixels(shape[0], shape[1], max_pixels, filename)
    if len(shape) == 3 and shape[2] == 0:
        raise InputError(422, "empty_image", f".npy array has shape {shape}: no channels", filename)
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as err:
        raise InputError(422, "corrupt_image", f"truncated or corrupt .npy array ({err})", filename) from None
    return arr


def _grey_from_wide(arr: np.ndarray) -> np.ndarray:
    """16-bit / int / float grey pixels -> uint8 (16-bit data scaled 0..65535 -> 0..255)."""
    arr = arr.astype(np.float64)
    if arr.max(initial=0) > 255:
        arr = arr / 257.0
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _read_pil(data: bytes, fmt: str, max_pixels: int, filename: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as img:
            _check_pixels(img.height, img.width, max_pixels, filename)  # header only: nothing decoded yet
            img.load()
            mode = img.mode
            if mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif mode in ("1", "LA", "La", "PA"):
                img = img.convert("L")
            elif mode in ("RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
                img = img.convert("RGB")
            if img.mode.startswith(("I", "F")):
                return _grey_from_wide(np.asarray(img))
            arr = np.asarray(img)
    except InputError:
        raise
    except Image.DecompressionBombError as err:
        raise InputError(413, "too_many_pixels", str(err), filename) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(422, "corrupt_image", f"cannot decode the {fmt} image ({err})", filename) from None
    return arr[..., :3] if arr.ndim == 3 and arr.shape[2] == 4 else arr


def _match_channels(arr: np.ndarray, channels: int, filename: str) -> np.ndarray:
    have = 1 if arr.ndim == 2 else arr.shape[2]
    if arr.ndim == 3 and have == 1:
        arr = arr[..., 0]
    if channels == 1 and have == 1:
        return arr
    if channels == 1 and have == 3 and (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
        return arr[..., 0]  # grey stored as RGB: lossless
    if channels == 3 and have == 3:
        return arr
    raise InputError(
        422,
        "wrong_channels",
        f"image has {have} channel(s); this model takes {channels} ({'greyscale' if channels == 1 else 'RGB'})",
        filename,
    )


def decode_image(data: bytes, filename: str, *, channels: int, image_size: int, max_pixels: int) -> DecodedImage:
    """Decode one untrusted image and bring it to the model's (image_size, image_size, channels) uint8 layout."""
    if not data:
        raise InputError(400, "empty_file", "the file is empty (0 bytes)", filename)
    fmt = sniff(data)
    if fmt is None:
        raise InputError(
            415, "unsupported_type", f"content is not {SUPPORTED} (checked the bytes, not the file name)", filename
        )
    arr = _read_npy(data, max_pixels, filename) if fmt == "NPY" else _read_pil(data, fmt, max_pixels, filename)
    if arr.ndim == 3 and arr.shape[2] not in (1, 3):
        raise InputError(
            422, "wrong_channels", f"image has {arr.shape[2]} channels; send 1 (grey) or 3 (RGB)", filename
        )
    original = (int(arr.shape[0]), int(arr.shape[1]))
    original_channels = 1 if arr.ndim == 2 else int(arr.shape[2])
    arr = _match_channels(arr, channels, filename)
    if arr.shape[:2] != (image_size, image_size):
        arr = np.asarray(Image.fromarray(arr).resize((image_size, image_size), Image.BILINEAR))
    if arr.ndim == 2:
        arr = arr[..., None]
    return DecodedImage(np.ascontiguousarray(arr, dtype=np.uint8), original, original_channels, fmt)


def set_pixel_limit(max_pixels: int) -> None:
    """Make PIL itself refuse images above the limit (it raises at twice MAX_IMAGE_PIXELS)."""
    Image.MAX_IMAGE_PIXELS = max_pixels
