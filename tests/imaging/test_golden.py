"""Golden test: one tricky file gives byte-identical model input through every entry point.

Entry points: prepare (an ImageFolder and a CSV manifest), the server's decode (``/v1/predict`` and
``medpipe predict`` call it), and ``monitor --images`` (``load_image_folder``); for a grey and an RGB model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from components.data.dataset import SPLITS, load_split, read_manifest
from components.data.prepare import prepare
from components.serving.images import decode_image
from medpipe.config import DataConfig
from medpipe.imaging import Preprocessing, conform, decode_file
from monitoring.window import load_image_folder
from tests.helpers.data import preprocessing
from tests.helpers.tricky import GREY, RGB, WIDE, write_tricky_files

SIZE = 32


def _record(channels: int) -> Preprocessing:
    return preprocessing(SIZE, channels)


def _prepared_by_file(root: Path, channels: int, out: Path) -> dict[str, np.ndarray]:
    """Prepare an ImageFolder of the tricky files (each in both classes) and map file -> prepared array."""
    cfg = DataConfig(source=str(root), image_size=SIZE, channels=channels, min_images_per_class=1)
    result = prepare(root, out, cfg)
    manifest = read_manifest(result.path)
    arrays = {}
    for split in SPLITS:
        images = load_split(result.path, split).images
        for ref, arr in zip(manifest["files"][split], images, strict=True):
            arrays[ref] = arr
    return arrays


@pytest.mark.parametrize("channels", [1, 3])
def test_every_entry_point_gives_the_same_pixels(tmp_path: Path, channels: int) -> None:
    files = tmp_path / "files"
    names = write_tricky_files(files)
    root = tmp_path / "folder"
    for cls in ("a", "b"):
        shutil.copytree(files, root / cls)
    prepared = _prepared_by_file(root, channels, tmp_path / "prepared")
    pre = _record(channels)
    monitored = load_image_folder(files, pre.spec)
    assert monitored.skipped == [] and monitored.names == names
    for i, name in enumerate(names):
        data = (files / name).read_bytes()
        served = decode_image(data, name, pre, max_pixels=1_000_000).array
        assert served.shape == (SIZE, SIZE, channels) and served.dtype == np.uint8, name
        for cls in ("a", "b"):
            assert prepared[f"{cls}/{name}"].tobytes() == served.tobytes(), f"prepare vs server: {name}"
        assert monitored.images[i].tobytes() == served.tobytes(), f"monitor vs server: {name}"


def test_the_policies_do_what_the_contract_says(tmp_path: Path) -> None:
    from PIL import Image

    files = tmp_path / "files"
    write_tricky_files(files)

    def native(name: str) -> np.ndarray:
        return decode_file(files / name).pixels

    # 16-bit PNG and TIFF: each image's own range stretched to 0..255 (the default "minmax" policy), identically
    png16 = native("png16.png")
    assert png16.shape == (40, 50, 1) and (png16.min(), png16.max()) == (0, 255)
    assert np.array_equal(png16, native("tiff16.tif"))
    stretched = (WIDE.astype(float) - WIDE.min()) / (WIDE.max() - WIDE.min()) * 255
    assert np.array_equal(png16[..., 0], np.rint(stretched).astype(np.uint8))
    # EXIF orientation 6: the stored 40x50 image is shown rotated to 50x40
    rotated = decode_file(files / "exif_rotated.jpg")
    assert rotated.original_size == (40, 50) and rotated.pixels.shape == (50, 40, 3)
    right, wrong = (np.asarray(Image.fromarray(RGB).rotate(a, expand=True)).astype(int) for a in (-90, 90))
    error = np.abs(rotated.pixels.astype(int) - right).mean()
    assert error < 8 and np.abs(rotated.pixels.astype(int) - wrong).mean() > 4 * error  # JPEG noise only
    # RGBA: composited onto black (the half with alpha 80 is darker than the opaque half)
    rgba, opaque = native("rgba.png"), native("rgb.png")
    assert np.array_equal(rgba[:, :25], opaque[:, :25]) and (rgba[:, 25:] <= opaque[:, 25:]).all()
    assert decode_file(files / "palette.png").original_channels == 4 and native("palette.png").shape == (40, 50, 3)
    # grey for an RGB model: the channel repeated; RGB for a grey model: PIL's luma, to the bit
    grey = native("grey.png")
    assert np.array_equal(grey[..., 0], GREY)
    assert np.array_equal(conform(grey, 32, 3), np.repeat(conform(grey, 32, 1), 3, axis=2))
    luma = np.asarray(Image.fromarray(RGB).convert("L").resize((32, 32), Image.Resampling.BILINEAR))
    assert np.array_equal(conform(opaque, 32, 1)[..., 0], luma)
    # DICOM: rescale then window; MONOCHROME1 is the inverse of MONOCHROME2 for the same values and window
    mono2 = decode_file(files / "mono2.dcm")
    hu = WIDE.astype(float) * 2.0 - 1024.0
    assert (mono2.pixels[..., 0][hu <= 1000 - 0.5 - 2999 / 2] == 0).all()
    assert (mono2.pixels[..., 0][hu > 1000 - 0.5 + 2999 / 2] == 255).all()
    assert np.array_equal(native("mono1.dcm"), 255 - mono2.pixels)
    assert mono2.header["Modality"] == "CR" and "PatientID" not in mono2.header
    # a float array: the same stretch as any other high-depth image
    assert np.array_equal(native("float.npy")[..., 0], np.rint((GREY - 0.0) / GREY.max() * 255).astype(np.uint8))
