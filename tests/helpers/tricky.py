"""A fixture set of tricky image files (written here, nothing downloaded), for the golden tests."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers.dicom import write_dicom

_Y, _X = np.mgrid[0:40, 0:50]
GREY = ((_X * 5 + _Y * 2) % 256).astype(np.uint8)  # 40 x 50, not symmetric (orientation is visible)
RGB = np.stack([GREY, 255 - GREY, (GREY // 2 + 60).astype(np.uint8)], axis=-1)
WIDE = (GREY.astype(np.uint16) * 16 + 100).astype(np.uint16)  # 12-bit data in a 16-bit container


def _save(img: Image.Image, path: Path, fmt: str, **kw: object) -> None:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    path.write_bytes(buf.getvalue())


def write_tricky_files(folder: Path) -> list[str]:
    """Write the tricky files into ``folder``; returns their names (sorted)."""
    folder.mkdir(parents=True, exist_ok=True)
    _save(Image.fromarray(WIDE), folder / "png16.png", "PNG")  # mode I;16
    _save(Image.fromarray(WIDE), folder / "tiff16.tif", "TIFF")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    _save(Image.fromarray(RGB), folder / "exif_rotated.jpg", "JPEG", exif=exif, quality=95)
    rgba = np.dstack([RGB, np.where(_X < 25, 255, 80).astype(np.uint8)])
    _save(Image.fromarray(rgba, "RGBA"), folder / "rgba.png", "PNG")
    palette = Image.fromarray(RGB).quantize(16)
    palette.info["transparency"] = 0
    _save(palette, folder / "palette.png", "PNG", transparency=0)
    _save(Image.fromarray(RGB), folder / "rgb.png", "PNG")
    _save(Image.fromarray(GREY), folder / "grey.png", "PNG")
    write_dicom(folder / "mono2.dcm", WIDE, rescale=(2.0, -1024.0), window=(1000.0, 3000.0), patient="0001")
    write_dicom(folder / "mono1.dcm", WIDE, photometric="MONOCHROME1", rescale=(2.0, -1024.0), window=(1000.0, 3000.0))
    np.save(folder / "float.npy", GREY.astype(np.float32) / 255.0)
    return sorted(p.name for p in folder.iterdir())
