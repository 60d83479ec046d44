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
    prepared_breastmnist, test_images, served_cnn_dir, medpipe_home, monkeypatch, tmp_path, empty_mlflow_db
) -> None:
    """The session's served model (trained and exported by the stages' own code), as the training flow leaves
    it: its reference profile, built through the ONNX graph, in ``<model>/reference``."""
    import shutil

    from medpipe.cli import app
    from medpipe.config import load_config
    from medpipe.settings import get_settings
    from monitoring.check import build_model_reference

    served = shutil.copytree(served_cnn_dir, tmp_path / "served")  # the session's folder stays read-only
    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_mlflow_db(tmp_path))
    get_settings.cache_clear()
    cfg = load_config(ROOT / "params.yaml")
    ref = build_model_reference(
        served / "model.onnx", prepared_breastmnist, cfg.monitoring, get_settings(), export=cfg.export
    )
    assert ref == served / "reference"

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
