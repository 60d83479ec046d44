"""Hot reload under concurrent load (16 clients), and exactly one log row per served image."""

from __future__ import annotations

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from components.data.dataset import load_split
from components.deploy.runtime import create_session, run_session
from components.models.inference import to_pixels
from components.serving.inference_log import InferenceLog
from components.serving.model_source import load_model
from medpipe.config import ExportConfig
from medpipe.settings import Settings

pytestmark = pytest.mark.slow
CLIENTS, REQUESTS = 16, 10


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_champion_swap_under_load_loses_nothing(onnx_folder, onnx_folder_b, prepared_breastmnist, serve, tmp_path):
    images = load_split(prepared_breastmnist, "test").images[:40]
    expected = {}
    for folder in (onnx_folder, onnx_folder_b):
        version = load_model(str(folder), ExportConfig(), Settings(home=tmp_path / "probe")).version
        expected[version] = run_session(
            create_session(folder / "model.onnx", ExportConfig()), to_pixels(images).numpy()
        )[0]
    v_a, v_b = list(expected)
    assert v_a != v_b
    current = tmp_path / "current"
    current.symlink_to(onnx_folder, target_is_directory=True)

    swap_at = threading.Event()
    done = [0]
    lock = threading.Lock()

    def client(worker: int) -> list[tuple[int, dict, list[int]]]:
        out = []
        with httpx.Client(timeout=60.0) as c:
            for j in range(REQUESTS):
                idx = [(worker * REQUESTS + j + k) % len(images) for k in range(1 + (j % 2))]
                files = [("files", (f"{i}.npy", npy(images[i]), "application/octet-stream")) for i in idx]
                r = c.post(f"{url}/v1/predict", files=files)
                out.append((r.status_code, r.json(), idx))
                with lock:
                    done[0] += 1
                    if done[0] == CLIENTS * REQUESTS // 3:
                        swap_at.set()
        return out

    with serve(str(current), max_batch=8, max_wait_ms=2.0, reload_interval_s=0.2) as (url, settings):
        with ThreadPoolExecutor(CLIENTS) as pool:
            futures = [pool.submit(client, w) for w in range(CLIENTS)]
            assert swap_at.wait(120)
            tmp_link = tmp_path / "next"
            tmp_link.symlink_to(onnx_folder_b, target_is_directory=True)
            os.replace(tmp_link, current)  # the "registry" moves the champion atomically
            reload = httpx.post(f"{url}/v1/reload", timeout=60).json()
            results = [r for f in futures for r in f.result()]
        final = httpx.get(f"{url}/v1/model").json()

    assert reload["version"] == v_b
    assert final["version"] == v_b and final["mean_batch_size"] >= 1.0
    assert [s for s, _, _ in results if s != 200] == []
    seen = {body["model"]["version"] for _, body, _ in results}
    assert seen == {v_a, v_b}
    for _, body, idx in results:  # each answer is exactly what its model says offline: no mixed batches
        probs = np.array([list(p["probabilities"].values()) for p in body["predictions"]])
        np.testing.assert_allclose(probs, expected[body["model"]["version"]][idx], atol=1e-6)

    rows = InferenceLog(settings.inference_log).read_window()
    served = sum(len(idx) for _, _, idx in results)
    assert len(rows) == served
    per_request = rows.groupby("request_id").size().to_dict()
    assert per_request == {body["request_id"]: len(idx) for _, body, idx in results}
    versions = rows.groupby("request_id").model_version.first().to_dict()
    assert versions == {body["request_id"]: body["model"]["version"] for _, body, _ in results}
