"""`medpipe predict FOLDER --out results.csv`, `medpipe feedback`, `medpipe deploy` through the real CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from components.data.dataset import load_split
from components.deploy.runtime import create_session, run_session
from components.models.inference import to_pixels
from components.serving.inference_log import InferenceLog
from medpipe.cli import app
from medpipe.config import ExportConfig
from medpipe.settings import get_settings

pytestmark = pytest.mark.slow


def test_predict_folder_then_feedback(onnx_folder, prepared_breastmnist, medpipe_home, tmp_path) -> None:
    images = load_split(prepared_breastmnist, "test").images[:6]
    folder = tmp_path / "incoming"
    (folder / "sub").mkdir(parents=True)
    for i, img in enumerate(images[:5]):
        Image.fromarray(img[..., 0]).save(folder / ("sub" if i % 2 else ".") / f"img{i}.png")
    np.save(folder / "img5.npy", images[5])
    (folder / "broken.png").write_bytes(b"not a png at all")
    out = tmp_path / "results.csv"
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(folder), "--out", str(out), "--model", str(onnx_folder)])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out)
    assert len(frame) == 7 and frame.error.notna().sum() == 1
    assert frame.set_index("file").loc["broken.png", "error"].startswith("unsupported_type")
    ok = frame[frame.error.isna()].set_index("file")
    expected = run_session(create_session(onnx_folder / "model.onnx", ExportConfig()), to_pixels(images).numpy())[0]
    names = ["img0.png", "sub/img1.png", "img2.png", "sub/img3.png", "img4.png", "img5.npy"]
    np.testing.assert_allclose(ok.loc[names, ["p_malignant", "p_normal_or_benign"]].to_numpy(), expected, atol=1e-5)

    log = InferenceLog(get_settings().inference_log)
    rows = log.read_window()
    assert len(rows) == 6
    rid = rows.request_id.iloc[0]
    res = runner.invoke(app, ["feedback", rid, "normal_or_benign", "--index", str(rows.image_index.iloc[0])])
    assert res.exit_code == 0, res.output
    assert log.read_window().label.tolist() == ["normal_or_benign"] + [None] * 5


def test_deploy_command(trained_model_dir_copy, prepared_breastmnist, medpipe_home) -> None:
    res = CliRunner().invoke(app, ["deploy", str(trained_model_dir_copy), "--prepared", str(prepared_breastmnist)])
    assert res.exit_code == 0, res.output
    assert (trained_model_dir_copy / "model.onnx").is_file() and (trained_model_dir_copy / "parity.json").is_file()
    assert "pass" in res.output


@pytest.fixture
def trained_model_dir_copy(trained_cnn_dir, tmp_path):
    return shutil.copytree(trained_cnn_dir, tmp_path / "model")
