"""The server decides at the operating point stored with the model (chosen on validation), not by argmax."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from components.data.dataset import load_split
from components.deploy.export import preprocessing_for
from medpipe.config import PipelineConfig
from medpipe.metrics import OperatingPoint

pytestmark = pytest.mark.slow


def test_predict_uses_the_stored_threshold(onnx_folder, prepared_breastmnist, serve, client, tmp_path: Path) -> None:
    from components.evaluation.served import served_probabilities

    folder = tmp_path / "model"
    shutil.copytree(onnx_folder, folder)
    cfg = PipelineConfig()
    images = load_split(prepared_breastmnist, "test").images[:24]
    p_malignant = served_probabilities(folder / "model.onnx", images, cfg.export)[:, 0]
    threshold = float(np.median(p_malignant))  # a threshold far from argmax's 0.5: half the images are called
    pre = preprocessing_for(folder / "model.onnx")
    op = OperatingPoint(rule="sensitivity", target=0.9, positive_class="malignant", positive_index=0,
                        threshold=threshold)  # fmt: skip
    pre.model_copy(update={"operating_point": op}).save(folder)

    with serve(str(folder)) as (url, _):
        files = [("files", (f"img{i}.npy", _npy(images[i]), "application/octet-stream")) for i in range(24)]
        body = client.post(f"{url}/v1/predict", files=files).json()
    preds = body["predictions"]
    assert all(p["threshold"] == threshold for p in preds)
    np.testing.assert_allclose([p["positive_probability"] for p in preds], p_malignant, atol=1e-6)
    expected = np.where(p_malignant >= threshold, "malignant", "normal_or_benign")
    assert [p["predicted_class"] for p in preds] == expected.tolist()
    assert (p_malignant >= threshold).sum() != (p_malignant >= 0.5).sum()  # the decision is not argmax's


def test_a_model_without_operating_point_says_argmax(onnx_folder, serve, client, prepared_breastmnist) -> None:
    images = load_split(prepared_breastmnist, "test").images[:2]
    with serve(str(onnx_folder)) as (url, _):
        files = [("files", (f"img{i}.npy", _npy(images[i]), "application/octet-stream")) for i in range(2)]
        preds = client.post(f"{url}/v1/predict", files=files).json()["predictions"]
    assert all(p["threshold"] is None and p["positive_probability"] is None for p in preds)
    assert all(p["predicted_class"] == max(p["probabilities"], key=p["probabilities"].get) for p in preds)


def _npy(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()
