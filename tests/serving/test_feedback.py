"""/v1/feedback refuses bad input with 422, answers 404 for an unknown request, and never shows server paths."""

from __future__ import annotations

import io

import numpy as np

from components.serving.inference_log import InferenceLog
from medpipe.settings import Settings


def test_feedback_errors(onnx_folder, serve, client, tmp_path) -> None:
    settings = Settings(home=tmp_path / "state")
    buf = io.BytesIO()
    np.save(buf, np.zeros((28, 28), np.uint8))
    with serve(str(onnx_folder), settings=settings) as (url, _):
        r = client.post(f"{url}/v1/predict", files=[("files", ("a.npy", buf.getvalue(), "x"))])
        rid = r.json()["request_id"]
        for body in (
            {"request_id": rid, "label": 0, "index": 10**30},  # was a 500 (SQLite integer overflow)
            {"request_id": rid, "label": 0, "index": -1},
            {"request_id": rid, "label": True},  # was taken as class 1
            {"request_id": rid, "label": 1.5},
            {"request_id": "", "label": 0},
        ):
            r = client.post(f"{url}/v1/feedback", json=body)
            assert r.status_code == 422, (body, r.text)
        r = client.post(f"{url}/v1/feedback", json={"request_id": rid, "label": "cat"})  # was a 404
        assert (r.status_code, r.json()["error"]) == (422, "invalid_label") and "cat" in r.json()["detail"]
        r = client.post(f"{url}/v1/feedback", json={"request_id": "nope", "label": 0})
        assert (r.status_code, r.json()["error"]) == (404, "not_found")
        assert str(tmp_path) not in r.text and "inference.db" in r.text  # the file's name, not where it lives
        assert client.post(f"{url}/v1/feedback", json={"request_id": rid, "label": 1}).json() == {"updated": 1}
    assert InferenceLog(settings.inference_log).read_window().label.tolist() == ["normal_or_benign"]
