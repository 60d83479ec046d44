"""`medpipe predict --explain` on a really registered version: the same Grad-CAM as `/v1/explain` serves."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from components.data.dataset import load_split
from medpipe.cli import app
from medpipe.config import PipelineConfig
from medpipe.errors import DataError
from medpipe.settings import Settings

pytestmark = pytest.mark.slow


def test_predict_explain_writes_the_served_maps(
    cnn_a, onnx_folder, prepared_breastmnist, medpipe_home, empty_mlflow_db, serve, tmp_path
) -> None:
    from components.registry.register import register_model

    empty_mlflow_db(medpipe_home)
    settings = Settings(home=medpipe_home)
    cfg = PipelineConfig().with_overrides({"registry.model_name": "explained"})
    reg = register_model(cnn_a.model_dir, onnx_folder / "model.onnx", settings, registry=cfg.registry,
                         lineage=cfg.lineage(), run_id=None, data_version="v1", metrics={"auc": 0.8})  # fmt: skip
    images = load_split(prepared_breastmnist, "test").images[:5]
    folder = tmp_path / "incoming"
    (folder / "sub").mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img[..., 0]).save(folder / ("sub" if i % 2 else ".") / f"img{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "results.csv"
    runner = CliRunner()
    args = ["predict", str(folder), "-o", str(out), "--model", reg.model_uri, "--no-log"]
    res = runner.invoke(app, [*args, "--explain"])
    assert res.exit_code == 0, res.output
    assert "Grad-CAM overlays" in res.output
    frame = pd.read_csv(out).set_index("file")
    ok = frame[frame.error.isna()]
    assert len(ok) == 5 and pd.isna(frame.loc["broken.png", "gradcam_png"])
    explain_dir = tmp_path / "results_explain"  # default: next to the CSV
    for rel in ok.index:
        png, npy = explain_dir / f"{rel}.gradcam.png", explain_dir / f"{rel}.gradcam.npy"
        assert ok.loc[rel, "gradcam_png"] == str(png) and ok.loc[rel, "gradcam_npy"] == str(npy)
        heatmap = np.load(npy)
        assert heatmap.shape == (28, 28) and heatmap.dtype == np.float32 and heatmap.min() >= 0
        assert heatmap.max() == pytest.approx(1.0, abs=1e-3)
        assert Image.open(png).size == (28, 28) and Image.open(png).mode == "RGB"

    # the same version served: /v1/explain of the class in the CSV gives the same map
    rel = "sub/img1.png"
    buf = io.BytesIO()
    Image.open(folder / rel).save(buf, format="PNG")
    with serve(reg.model_uri, settings=settings) as (url, _):
        r = httpx.post(f"{url}/v1/explain", params={"target": ok.loc[rel, "predicted_class"]},
                       files=[("files", ("x.png", buf.getvalue(), "image/png"))], timeout=600)  # fmt: skip
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.array(r.json()["heatmap"]), np.load(explain_dir / f"{rel}.gradcam.npy"), atol=1e-4)

    # --explain-dir; and a folder with only the ONNX graph cannot be explained, and says so
    res = runner.invoke(app, [*args, "--explain-dir", str(tmp_path / "maps")])
    assert res.exit_code == 0 and (tmp_path / "maps" / "img0.png.gradcam.npy").is_file(), res.output
    res = runner.invoke(app, ["predict", str(folder), "-o", str(out), "--model", str(onnx_folder), "--explain"])
    assert isinstance(res.exception, DataError) and "no PyTorch flavour" in str(res.exception)  # main() prints it
