"""DICOM intake with pydicom: pixel data -> 8-bit pixels, technical header fields, a patient hash.

* Modality LUT (rescale slope/intercept or a Modality LUT sequence), then the VOI LUT or the window
  centre/width of the file (``DecodePolicy.window_center/width`` override it), mapped to 0..255 over
  the output range of the VOI transform. Without any VOI the ``high_depth`` rule applies.
* MONOCHROME1 is inverted; RGB/YBR become RGB (pydicom converts YBR); PALETTE COLOR goes through the
  colour LUT. Any other photometric interpretation is refused.
* Compressed transfer syntaxes decode through pydicom's plugins (pylibjpeg, pillow, RLE); a syntax
  with no installed decoder is a clear error naming it.
* **No PHI leaves this module.** Only :data:`HEADER_WHITELIST` (technical fields) is returned; the
  patient identity is returned only as a hash (PatientID, else StudyInstanceUID), which callers salt
  again before writing anything (see :func:`patient_hash`).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging

import numpy as np

from medpipe.imaging.errors import ImageError
from medpipe.imaging.pixels import Decoded, check_pixels, to_8bit
from medpipe.imaging.policy import DecodePolicy

HEADER_WHITELIST = (
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "BodyPartExamined",
    "ViewPosition",
    "PhotometricInterpretation",
    "BitsStored",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "SliceThickness",
    "KVP",
)
MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "YBR_PARTIAL_420", "PALETTE COLOR")
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_EXTREMES = np.array([-1e30, 1e30])


def patient_hash(identity: str, salt: str) -> str:
    """A salted, one-way key for a patient identity (HMAC-SHA256, 16 hex digits)."""
    return hmac.new(salt.encode(), identity.encode(), hashlib.sha256).hexdigest()[:16]


def header_fields(ds: object) -> dict[str, str]:
    """The whitelisted technical fields present in ``ds``, as strings (nothing else, never PHI)."""
    out = {}
    for key in HEADER_WHITELIST:
        value = getattr(ds, key, None)
        if value is not None and str(value).strip():
            many = not isinstance(value, str | bytes) and hasattr(value, "__iter__")
            out[key] = "\\".join(str(v) for v in value) if many else str(value)
    return out


def read_dicom(data: bytes, name: str, policy: DecodePolicy, *, max_pixels: int, salt: str = "") -> Decoded:
    """Decode one DICOM file (see the module docstring) or raise :class:`ImageError` naming it."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    logging.getLogger("pydicom").setLevel(logging.ERROR)  # its warnings may quote header values
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError, TypeError) as err:
        raise ImageError(name, f"not a readable DICOM file ({type(err).__name__})") from None
    if not any(tag in ds for tag in _PIXEL_TAGS):
        raise ImageError(
            name,
            "the DICOM file has no pixel data (a report, plan or presentation state?): only images can be used",
            code="no_pixel_data",
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric not in MONOCHROME + COLOUR:
        raise ImageError(
            name,
            f"unknown photometric interpretation {photometric or '(missing)'!r}; expected one of "
            f"{', '.join(MONOCHROME + COLOUR)}",
            code="unknown_photometric",
        )
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    check_pixels(rows, cols, max_pixels, name)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1 and policy.multiframe == "reject":
        raise ImageError(
            name,
            f"multi-frame DICOM ({frames} frames); set data.decode.multiframe to 'first' or 'middle' to keep one",
            code="multiframe",
        )
    arr = _pixel_array(ds, name)
    if frames > 1:
        arr = arr[0 if policy.multiframe == "first" else frames // 2]
    channels = int(ds.get("SamplesPerPixel", 1) or 1)
    pixels = _colour(arr, ds, name) if photometric in COLOUR else _grey(arr, ds, policy, photometric, name)
    identity = str(ds.get("PatientID", "") or "").strip() or str(ds.get("StudyInstanceUID", "") or "").strip()
    return Decoded(
        pixels=np.ascontiguousarray(pixels[..., None] if pixels.ndim == 2 else pixels),
        format="DICOM",
        original_size=(rows, cols),
        original_channels=3 if photometric == "PALETTE COLOR" else channels,
        header=header_fields(ds),
        patient=patient_hash(identity, salt) if identity else None,
    )


def _pixel_array(ds: object, name: str) -> np.ndarray:
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    try:
        return ds.pixel_array
    except (NotImplementedError, RuntimeError, ValueError, AttributeError, TypeError, KeyError) as err:
        if syntax is not None and syntax.is_compressed:
            from pydicom.pixels import get_decoder

            try:
                missing = not get_decoder(syntax).is_available
            except NotImplementedError:
                missing = True
            if missing:
                raise ImageError(
                    name,
                    f"compressed transfer syntax {syntax.name} ({syntax}) has no decoder installed; install the "
                    "pydicom plugin for it (pylibjpeg-openjpeg for HTJ2K / JPEG 2000, python-gdcm otherwise) or "
                    "send an uncompressed file",
                    code="unsupported_transfer_syntax",
                    status=415,
                ) from None
        raise ImageError(name, f"cannot decode the DICOM pixel data ({type(err).__name__}: {err})") from None


def _colour(arr: np.ndarray, ds: object, name: str) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    if str(ds.PhotometricInterpretation).upper() == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        if arr.dtype != np.uint8:  # 16-bit palette entries
            arr = (arr.astype(np.float64) / 257.0).round().clip(0, 255).astype(np.uint8)
        return arr
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageError(name, f"colour DICOM pixel data has shape {arr.shape}; expected (rows, columns, 3)")
    return arr if arr.dtype == np.uint8 else to_8bit(arr, DecodePolicy(high_depth="minmax"), name)


def _grey(arr: np.ndarray, ds: object, policy: DecodePolicy, photometric: str, name: str) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(arr, ds)
    if policy.window_center is not None and policy.window_width is not None:
        ds.WindowCenter, ds.WindowWidth = policy.window_center, policy.window_width
        if "VOILUTSequence" in ds:
            del ds.VOILUTSequence
        if "VOILUTFunction" in ds:
            del ds.VOILUTFunction
    has_voi = "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds)
    if has_voi:
        try:
            out = apply_voi_lut(values.astype(np.float64), ds)
            lo, hi = (float(v) for v in apply_voi_lut(_EXTREMES.copy(), ds))
        except (ValueError, TypeError, AttributeError) as err:
            raise ImageError(name, f"invalid VOI LUT / window in the DICOM header ({err})") from None
        scaled = np.zeros_like(out) if hi <= lo else (out - lo) / (hi - lo) * 255.0
        pixels = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    else:
        pixels = to_8bit(values, policy, name)
    return 255 - pixels if photometric == "MONOCHROME1" else pixels
