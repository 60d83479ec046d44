"""The real server (uvicorn on 127.0.0.1) against offline ONNX Runtime, on real BreastMNIST images."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.data.dataset import load_split
from components.deploy.runtime import create_session, run_session
from components.models.inference import to_pixels
from components.serving.inference_log import InferenceLog
from medpipe.config import ExportConfig
from medpipe.imaging.features import image_features
from medpipe.settings import Settings

pytestmark = pytest.mark.slow


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def offline(folder: Path, images: np.ndarray) -> np.ndarray:
    return run_session(create_session(folder / "model.onnx", ExportConfig()), to_pixels(images).numpy())[0]


def test_predictions_match_offline_ort(onnx_folder, prepared_breastmnist, serve, client) -> None:
    test = load_split(prepared_breastmnist, "test")
    images = test.images[:12]
    expected = offline(onnx_folder, images)
    with serve(str(onnx_folder)) as (url, settings):
        assert client.get(f"{url}/v1/health").json() == {"status": "ok"}
        ready = client.get(f"{url}/v1/ready").json()
        assert ready["ready"] is True
        info = client.get(f"{url}/v1/model").json()
        assert info["class_names"] == ["malignant", "normal_or_benign"]
        recorded = json.loads((onnx_folder / "preprocessing.json").read_text()).get("data_version")
        assert info["data_version"] == recorded and info["provider"] == "CPUExecutionProvider"
        assert "/v1/predict" in client.get(f"{url}/openapi.json").json()["paths"]
        assert client.get(f"{url}/docs").status_code == 200

        # multipart: PNG files (names lie about nothing here) and .npy arrays in one request
        files = [("files", (f"img{i}.png", png(images[i, ..., 0]), "image/png")) for i in range(8)]
        files += [("files", (f"img{i}.npy", npy(images[i]), "application/octet-stream")) for i in range(8, 12)]
        r = client.post(f"{url}/v1/predict", files=files)
        assert r.status_code == 200, r.text
        body = r.json()
        got = np.array([[p["probabilities"][c] for c in info["class_names"]] for p in body["predictions"]])
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert [p["predicted_class"] for p in body["predictions"]] == [
            info["class_names"][k] for k in expected.argmax(1)
        ]
        assert body["model"] == {"name": onnx_folder.name, "version": info["version"]}
        assert r.headers["x-request-id"] == body["request_id"] and r.headers["x-model-version"] == info["version"]

        # one raw image/png body (named by X-Filename)
        r = client.post(f"{url}/v1/predict", content=png(images[0, ..., 0]), headers={"content-type": "image/png",
                        "x-filename": "scan.png"})  # fmt: skip
        assert r.status_code == 200, r.text
        (only,) = r.json()["predictions"]
        assert only["filename"] == "scan.png"
        np.testing.assert_allclose([only["probabilities"][c] for c in info["class_names"]], expected[0], atol=1e-6)

        # JSON with base64 images
        payload = {"images": [{"data": base64.b64encode(png(images[i, ..., 0])).decode()} for i in range(3)]}
        r = client.post(f"{url}/v1/predict", json=payload)
        assert r.status_code == 200, r.text
        got = np.array([[p["probabilities"][c] for c in info["class_names"]] for p in r.json()["predictions"]])
        np.testing.assert_allclose(got, expected[:3], atol=1e-6)

        # all 12 images as one application/x-npy stack (N, H, W, C): the same answers, images named stack[i]
        r = client.post(f"{url}/v1/predict", content=npy(images), headers={"content-type": "application/x-npy"})
        assert r.status_code == 200, r.text
        got = np.array([[p["probabilities"][c] for c in info["class_names"]] for p in r.json()["predictions"]])
        np.testing.assert_allclose(got, expected, atol=1e-6)
        assert [p["filename"] for p in r.json()["predictions"]] == [f"stack[{i}]" for i in range(12)]

        # feedback by endpoint, then the log holds one row per image with features and embedding
        rid = body["request_id"]
        fb = client.post(f"{url}/v1/feedback", json={"request_id": rid, "label": 0, "index": 2})
        assert fb.json() == {"updated": 1}
        assert client.post(f"{url}/v1/feedback", json={"request_id": "nope", "label": 0}).status_code == 404
    rows = InferenceLog(settings.inference_log).read_window()
    assert len(rows) == 28
    mine = rows[rows.request_id == rid].sort_values("image_index")
    assert mine.label.tolist() == [None, None, "malignant"] + [None] * 9
    assert len(mine.embedding.iloc[0]) == 256
    assert mine.features.tolist() == image_features(images).to_dict("records")  # monitoring's own definition
    np.testing.assert_allclose(np.stack(mine.probabilities.to_list()), expected, atol=1e-6)


def _bomb_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _npy_header_bomb() -> bytes:
    """A .npy whose header claims 100000 x 100000 pixels (the body is tiny)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": (100_000, 100_000)})
    return buf.getvalue() + b"\0" * 64


def test_bad_inputs_get_the_right_4xx(onnx_folder, prepared_breastmnist, serve, client) -> None:
    img = load_split(prepared_breastmnist, "test").images[0]
    good = png(img[..., 0])
    rgb = np.stack([img[..., 0], 255 - img[..., 0], img[..., 0]], axis=-1)
    cases = {
        "not an image named .png": ([("files", ("x.png", b"plain text" * 9, "image/png"))], 415, "unsupported_type"),
        "empty file": ([("files", ("e.png", b"", "image/png"))], 400, "empty_file"),
        "5-channel array": ([("files", ("a.npy", npy(np.zeros((28, 28, 5), np.uint8)), "x"))], 422, "wrong_shape"),
        "decompression bomb": ([("files", ("b.png", _bomb_png(3000), "image/png"))], 413, "too_many_pixels"),
        "bomb as .npy header": ([("files", ("b.npy", _npy_header_bomb(), "x"))], 413, "too_many_pixels"),
        "truncated png": ([("files", ("t.png", good[: len(good) // 2], "image/png"))], 422, "corrupt_image"),
        "NaN array": ([("files", ("f.npy", npy(np.full((28, 28), np.nan, np.float32)), "x"))], 422, "corrupt_image"),
        "empty array": ([("files", ("z.npy", npy(np.zeros((0, 28), np.uint8)), "x"))], 422, "empty_image"),
        "too many images": ([("files", (f"{i}.png", good, "image/png")) for i in range(5)], 413, "too_many_images"),
    }  # fmt: skip
    with serve(str(onnx_folder), max_pixels=1_000_000, max_images_per_request=4, max_request_bytes=400_000) as (
        url,
        settings,
    ):
        for what, (files, status, code) in cases.items():
            r = client.post(f"{url}/v1/predict", files=files)
            assert (r.status_code, r.json()["error"]) == (status, code), f"{what}: {r.text}"
            assert r.json()["detail"], what
        r = client.post(f"{url}/v1/predict", files=[("files", ("big.npy", npy(np.zeros((700, 700), np.uint8)), "x"))])
        assert (r.status_code, r.json()["error"]) == (413, "request_too_large")
        r = client.post(f"{url}/v1/predict", json={"images": [{"data": "!!not base64!!"}]})
        assert (r.status_code, r.json()["error"]) == (422, "invalid_base64")
        r = client.post(f"{url}/v1/predict", json={"pictures": []})
        assert (r.status_code, r.json()["error"]) == (422, "invalid_json")
        r = client.post(f"{url}/v1/predict", content=good, headers={"content-type": "text/plain"})
        assert (r.status_code, r.json()["error"]) == (415, "unsupported_content_type")
        r = client.post(f"{url}/v1/predict", content=b"", headers={"content-type": "image/png"})
        assert (r.status_code, r.json()["error"]) == (400, "empty_file")
        r = client.post(f"{url}/v1/predict", content=b"text" * 9, headers={"content-type": "application/dicom"})
        assert (r.status_code, r.json()["error"]) == (415, "unsupported_type")
        r = client.post(f"{url}/v1/predict", data={"other": "x"}, files=[("notfiles", ("a.png", good, "image/png"))])
        assert (r.status_code, r.json()["error"]) == (422, "no_images")
        # the worker survived all of it; a colour image for a grey model is converted as prepare converts it
        r = client.post(f"{url}/v1/predict", files=[("files", ("ok.png", good, "image/png"))])
        assert r.status_code == 200, r.text
        r = client.post(f"{url}/v1/predict", files=[("files", ("c.png", png(rgb), "image/png"))])
        assert r.status_code == 200, r.text
    assert InferenceLog(settings.inference_log).count() == 2  # refused requests log nothing


def test_api_key_when_required(onnx_folder, serve, client, tmp_path) -> None:
    from pydantic import SecretStr

    settings = Settings(home=tmp_path / "keyed", api_keys=SecretStr("k1, k2"))
    with serve(str(onnx_folder), settings=settings, require_api_key=True) as (url, _):  # explicit true agrees
        npy_file = [("files", ("a.npy", npy(np.zeros((28, 28), np.uint8)), "x"))]
        assert client.post(f"{url}/v1/predict", files=npy_file).status_code == 401
        assert client.post(f"{url}/v1/predict", files=npy_file, headers={"X-API-Key": "bad"}).status_code == 401
        assert client.post(f"{url}/v1/predict", files=npy_file, headers={"X-API-Key": "k2"}).status_code == 200
        assert client.get(f"{url}/v1/health").status_code == 200
