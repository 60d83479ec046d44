"""Bounded work per request: total pixels (checked from headers) and decoding time, 413 with a clear code."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from components.serving.inference_log import InferenceLog
from medpipe.settings import Settings

SIDE = 2048


def _flat_png(value: int) -> bytes:
    """A 2048x2048 grey PNG of one value: ~4.2 M pixels in a few KB (what amplification attacks send)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((SIDE, SIDE), value, np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def test_total_pixels_and_decode_time_per_request_are_bounded(onnx_folder, serve, client, tmp_path) -> None:
    png = _flat_png(90)
    assert len(png) < 64 * 1024  # small on the wire, large once decoded
    files = [("files", (f"img{i}.png", png, "image/png")) for i in range(8)]
    settings = Settings(home=tmp_path / "state")
    with serve(str(onnx_folder), settings=settings, max_request_pixels=3 * SIDE * SIDE) as (url, _):
        r = client.post(f"{url}/v1/predict", files=files[:3])  # exactly the budget: served
        assert r.status_code == 200, r.text
        r = client.post(f"{url}/v1/predict", files=files)
        body = r.json()
        assert (r.status_code, body["error"]) == (413, "request_too_many_pixels"), r.text
        assert body["file"] == "img3.png" and "serving.max_request_pixels" in body["detail"]
    with serve(str(onnx_folder), settings=settings, max_decode_s=0.001) as (url, _):
        r = client.post(f"{url}/v1/predict", files=files[:2])
        body = r.json()
        assert (r.status_code, body["error"]) == (413, "request_decode_too_slow"), r.text
        assert body["file"] == "img1.png" and "serving.max_decode_s" in body["detail"]
    assert InferenceLog(settings.inference_log).count() == 3  # refused requests log nothing
