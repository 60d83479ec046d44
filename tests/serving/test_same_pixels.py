"""End to end: the probabilities /v1/predict returns for a file equal those of the prepare -> model path."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from components.data.dataset import SPLITS, load_split, read_manifest
from components.data.prepare import prepare
from components.models.inference import to_pixels
from components.serving.model_source import load_model
from medpipe.config import DataConfig, ExportConfig
from medpipe.imaging import Preprocessing
from medpipe.settings import Settings
from tests.helpers.tricky import write_tricky_files

pytestmark = pytest.mark.slow


def test_served_probabilities_equal_the_prepare_path(onnx_folder: Path, serve, client, tmp_path: Path) -> None:
    pre = Preprocessing.load(onnx_folder)
    files = tmp_path / "files"
    names = write_tricky_files(files)
    root = tmp_path / "folder"
    for cls in ("a", "b"):
        shutil.copytree(files, root / cls)
    cfg = DataConfig(source=str(root), image_size=pre.image_size, channels=pre.channels, min_images_per_class=1)
    result = prepare(root, tmp_path / "prepared", cfg)
    manifest, arrays = read_manifest(result.path), {}
    for split in SPLITS:
        for ref, arr in zip(manifest["files"][split], load_split(result.path, split).images, strict=True):
            arrays[ref] = arr
    model = load_model(str(onnx_folder), ExportConfig(), Settings(home=tmp_path / "state"))
    expected, _ = model.run(to_pixels(np.stack([arrays[f"a/{n}"] for n in names])).numpy())

    with serve(str(onnx_folder)) as (url, _):
        for name, want in zip(names, expected, strict=True):
            ctype = "application/dicom" if name.endswith(".dcm") else "application/octet-stream"
            r = client.post(f"{url}/v1/predict", files=[("files", (name, (files / name).read_bytes(), ctype))])
            assert r.status_code == 200, f"{name}: {r.text}"
            got = r.json()["predictions"][0]["probabilities"]
            np.testing.assert_allclose([got[c] for c in pre.class_names], want, atol=1e-5, err_msg=name)
