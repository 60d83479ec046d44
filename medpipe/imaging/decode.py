"""Bytes -> :class:`Decoded`: format sniffing, pixel limits, EXIF orientation, the 16-bit/float policy,
alpha and palettes. The one decoder of the project (prepare, the server, batch predict and the monitor).

Order matters for safety: sniff the content (the file name is only used to name the file in errors), read
only the header, refuse too many pixels BEFORE decoding (decompression bombs), then decode fully (so a
truncated file fails here, never later as a silently grey image).
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medpipe.imaging.errors import ImageError
from medpipe.imaging.pixels import Decoded, check_pixels, to_8bit
from medpipe.imaging.policy import DecodePolicy

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"\x93NUMPY", "NPY"),
)
FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "NPY", "DICOM")
SUPPORTED = "PNG, JPEG, TIFF, BMP, .npy or DICOM"
EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy", ".dcm", ".dicom"})
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default limit (about 0.25 GB of RGB pixels)
_WIDE_MODES = ("I", "F")  # I, I;16, I;16B, I;16L, I;16N, F
_TO_RGB_MODES = frozenset({"CMYK", "YCbCr", "LAB", "HSV", "RGBX"})


def sniff(data: bytes) -> str | None:
    """The real format from the first bytes: one of :data:`FORMATS`, or None."""
    if data[128:132] == b"DICM":  # first: a DICOM preamble may itself look like a TIFF header
        return "DICOM"
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    return None


def decode(
    data: bytes,
    name: str,
    policy: DecodePolicy | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    salt: str = "",
) -> Decoded:
    """Decode ``data`` (the bytes of the file ``name``) or raise :class:`ImageError` naming it and saying why.

    ``salt`` keys the patient hash of DICOM files (see :func:`medpipe.imaging.dicom.patient_hash`).
    """
    policy = policy or DecodePolicy()
    if not data:
        raise ImageError(name, "zero-byte file", code="empty_file", status=400)
    fmt = sniff(data)
    if fmt is None and Path(name).suffix.lower() in (".dcm", ".dicom"):
        fmt = "DICOM"  # DICOM without the 128-byte preamble (old files): let pydicom try
    if fmt is None:
        raise ImageError(
            name,
            f"not an image file (content is not {SUPPORTED}; checked the bytes, not the file name)",
            code="unsupported_type",
            status=415,
        )
    if fmt == "DICOM":
        from medpipe.imaging.dicom import read_dicom

        return read_dicom(data, name, policy, max_pixels=max_pixels, salt=salt)
    if fmt == "NPY":
        return _read_npy(data, name, policy, max_pixels)
    return _read_pil(data, name, fmt, policy, max_pixels)


def decode_file(
    path: Path,
    policy: DecodePolicy | None = None,
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    salt: str = "",
) -> Decoded:
    """:func:`decode` of a file on disk; a missing or unreadable file is an :class:`ImageError` too."""
    shown = name or str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError(shown, "file not found", code="not_found", status=404) from None
    except OSError as err:
        raise ImageError(shown, f"unreadable file ({err.strerror or err})", code="unreadable") from None
    return decode(data, shown, policy, max_pixels=max_pixels, salt=salt)


def _with_channels(arr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(arr[..., None] if arr.ndim == 2 else arr)


def _npy_array(data: bytes, name: str) -> tuple[tuple[int, ...], object]:
    """(shape, reader) of a .npy file from its header; ``reader()`` returns the array (no pickles, no second
    parse of the header). Nothing but the header is read until ``reader`` is called."""
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(buf)
    except (ValueError, OSError) as err:
        raise ImageError(name, f"not a readable .npy array ({err})") from None
    if dtype.hasobject:
        raise ImageError(name, f".npy array of {dtype} holds Python objects, not pixel values", code="wrong_dtype")

    def reader() -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64))
        try:
            flat = np.frombuffer(data, dtype=dtype, count=count, offset=buf.tell())
        except ValueError as err:
            raise ImageError(name, f"truncated or corrupt .npy array ({err})") from None
        return flat.reshape(shape, order="F" if fortran else "C").copy()  # writable, owns its memory

    return tuple(shape), reader


def _read_npy(data: bytes, name: str, policy: DecodePolicy, max_pixels: int) -> Decoded:
    shape, reader = _npy_array(data, name)
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3, 4)):
        raise ImageError(name, f".npy array has shape {shape}; expected (H, W) or (H, W, 1|3|4)", code="wrong_shape")
    check_pixels(shape[0], shape[1], max_pixels, name)
    return from_array(reader(), name, policy)


def decode_npy_stack(
    data: bytes, name: str, policy: DecodePolicy, *, max_images: int, max_pixels: int, max_total_pixels: int
) -> list[Decoded]:
    """One .npy array of N images, (N, H, W) or (N, H, W, 1|3|4) -> N :class:`Decoded`, each image by the
    rules of a .npy file (:func:`from_array`: the high-depth policy per image, alpha). The limits are checked
    from the header, before the pixels are read: N <= ``max_images``, H x W <= ``max_pixels``,
    N x H x W <= ``max_total_pixels``."""
    shape, reader = _npy_array(data, name)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3, 4)):
        raise ImageError(name, f"image stack has shape {shape}; expected (N, H, W) or (N, H, W, 1|3|4)",
                         code="wrong_shape")  # fmt: skip
    n = shape[0]
    if n == 0:
        raise ImageError(name, "image stack holds no image (N = 0)", code="empty_image")
    if n > max_images:
        raise ImageError(name, f"image stack holds {n} images, more than serving.max_images_per_request="
                         f"{max_images}", code="too_many_images", status=413)  # fmt: skip
    check_pixels(shape[1], shape[2], max_pixels, name)
    if n * shape[1] * shape[2] > max_total_pixels:
        raise ImageError(name, f"{n} images of {shape[2]}x{shape[1]} pixels add up to more than serving."
                         f"max_request_pixels={max_total_pixels}; send fewer or smaller images per request",
                         code="request_too_many_pixels", status=413)  # fmt: skip
    return [from_array(image, f"{name}[{i}]", policy) for i, image in enumerate(reader())]


def from_array(arr: np.ndarray, name: str, policy: DecodePolicy, fmt: str = "NPY") -> Decoded:
    """An in-memory (H, W) or (H, W, 1|3|4) array of any numeric dtype -> :class:`Decoded` (same rules as files)."""
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise ImageError(name, f"array has shape {arr.shape}; expected (H, W) or (H, W, 1|3|4)", code="wrong_shape")
    original_channels = 1 if arr.ndim == 2 else arr.shape[2]
    pixels = _with_channels(to_8bit(arr, policy, name))
    if pixels.shape[2] == 4:
        pixels = _with_channels(_composite(Image.fromarray(pixels, "RGBA")))
    return Decoded(pixels, fmt, (int(arr.shape[0]), int(arr.shape[1])), int(original_channels))


def _composite(img: Image.Image) -> np.ndarray:
    """Alpha images (RGBA, LA, ...) onto a black background: RGB or L pixels."""
    target = "L" if img.mode in ("LA", "La") else "RGB"
    background = Image.new(target, img.size, 0)
    background.paste(img.convert(target), mask=img.getchannel("A"))
    return np.asarray(background)


def _pixels(img: Image.Image, policy: DecodePolicy, name: str) -> np.ndarray:
    """Any PIL mode -> uint8 (H, W) grey or (H, W, 3) RGB, per the policy."""
    mode = img.mode
    if mode.startswith(_WIDE_MODES):
        return to_8bit(np.asarray(img), policy, name)
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "RGBa", "LA", "La"):
        return _composite(img)
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode in _TO_RGB_MODES:
        return np.asarray(img.convert("RGB"))
    if mode in ("L", "RGB"):
        return np.asarray(img)
    raise ImageError(name, f"unsupported image mode {mode!r}", code="unsupported_type", status=415)


def _read_pil(data: bytes, name: str, fmt: str, policy: DecodePolicy, max_pixels: int) -> Decoded:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[fmt]) as img:
                check_pixels(img.height, img.width, max_pixels, name)  # header only: nothing decoded yet
                img.load()
                bands = len(img.getbands())
                if img.mode == "P":
                    bands = 4 if "transparency" in img.info else 3
                original = (img.height, img.width)
                img = ImageOps.exif_transpose(img)
                arr = _pixels(img, policy, name)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(
            name, f"image too large to decode safely ({err})", code="too_many_pixels", status=413
        ) from None
    except UnidentifiedImageError:
        raise ImageError(name, f"corrupt or unreadable image (not a readable {fmt} file)") from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        what = "truncated image" if "truncated" in str(err).lower() else "corrupt or unreadable image"
        raise ImageError(name, f"{what} ({fmt}: {err})") from None
    return Decoded(_with_channels(arr), fmt, original, bands)
