"""`medpipe monitor --images DIR --json` end to end on a real ONNX model folder with its reference profile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_monitor_images_json(
    prepared_breastmnist, test_images, random_cnn_dir, medpipe_home, monkeypatch, tmp_path, empty_mlflow_db
) -> None:
    from components.deploy.export import export_onnx
    from components.serving.model_source import load_model
    from medpipe.cli import app
    from medpipe.config import ExportConfig, load_config
    from medpipe.settings import get_settings
    from monitoring.check import onnx_embed_fn
    from monitoring.reference import build_reference

    served = tmp_path / "served"
    export_onnx(random_cnn_dir, served / "model.onnx", ExportConfig())  # + served/preprocessing.json
    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_mlflow_db(tmp_path))
    get_settings.cache_clear()
    cfg = load_config(ROOT / "params.yaml")
    embed = onnx_embed_fn(load_model(str(served), cfg.export, get_settings()))  # the ONNX `embedding` output
    build_reference(prepared_breastmnist, embed, cfg.monitoring).save(served / "reference")

    images = tmp_path / "incoming"
    images.mkdir()
    for i, img in enumerate(test_images[:60]):
        Image.fromarray(np.clip(img[..., 0] * 1.3, 0, 255).astype(np.uint8)).save(images / f"{i}.png")
    args = ["monitor", "--images", str(images), "--json", "--model", str(served), "--no-alerts"]
    result = CliRunner().invoke(app, [*args, "--params", str(ROOT / "params.yaml")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["drift_detected"] is True and data["window_size"] == 60
    assert all({"name", "score", "threshold", "drifted"} <= set(s) for s in data["signals"])
    assert data["estimated_accuracy"] is not None
    assert Path(data["report_paths"]["html"]).is_file() and "mlflow_run_id" in data["report_paths"]

    few = tmp_path / "few"
    few.mkdir()
    Image.fromarray(test_images[0, ..., 0]).save(few / "0.png")
    result = CliRunner().invoke(app, ["monitor", "--images", str(few), "--json", "--model", str(served), "--no-alerts"])
    assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "not_enough_data"
