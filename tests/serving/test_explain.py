"""``POST /v1/explain``: Grad-CAM of the served version's PyTorch flavour, through a real server."""

from __future__ import annotations

import base64
import io
import shutil

import numpy as np
import pytest
from PIL import Image

from components.data.dataset import load_split

pytestmark = pytest.mark.slow


@pytest.fixture
def deployed(trained_cnn_dir, served_cnn_dir, tmp_path):  # noqa: ANN001, ANN201 - Path
    """A model folder after `medpipe deploy`: the session's checkpoint folder plus its export (the session's
    ``export_onnx`` of that same folder), copied so that each test has its own."""
    folder = shutil.copytree(trained_cnn_dir, tmp_path / "model")
    return shutil.copytree(served_cnn_dir, folder, dirs_exist_ok=True)


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_explain_heatmap_of_the_served_version(deployed, onnx_folder, prepared_breastmnist, serve, client) -> None:
    image = load_split(prepared_breastmnist, "test").images[3, ..., 0]
    files = [("files", ("scan.png", _png(image), "image/png"))]
    with serve(str(deployed)) as (url, _):
        predicted = client.post(f"{url}/v1/predict", files=files).json()["predictions"][0]
        r = client.post(f"{url}/v1/explain", files=files, timeout=600)  # the first one imports torch and captum
        assert r.status_code == 200, r.text
        body = r.json()
        other = next(c for c in predicted["probabilities"] if c != predicted["predicted_class"])
        r_other = client.post(f"{url}/v1/explain", params={"target": other}, files=files)
        bad_target = client.post(f"{url}/v1/explain", params={"target": "nope"}, files=files)
        two = client.post(f"{url}/v1/explain", files=files * 2)
    assert r.headers["x-model-version"] == body["model"]["version"]
    # the PyTorch flavour agrees with the ONNX graph that served the prediction
    assert body["predicted_class"] == body["target_class"] == predicted["predicted_class"]
    for name, p in predicted["probabilities"].items():
        assert body["probabilities"][name] == pytest.approx(p, abs=1e-4)
    heatmap = np.array(body["heatmap"])
    assert heatmap.shape == (28, 28) and heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0, abs=1e-3)
    overlay = Image.open(io.BytesIO(base64.b64decode(body["overlay_png"])))
    assert (overlay.size, overlay.mode) == ((28, 28), "RGB")
    assert r_other.status_code == 200 and r_other.json()["target_class"] == other
    assert not np.allclose(np.array(r_other.json()["heatmap"]), heatmap)  # another class, another map
    assert (bad_target.status_code, bad_target.json()["error"]) == (422, "invalid_target")
    assert (two.status_code, two.json()["error"]) == (413, "too_many_images")

    # a folder with only the ONNX graph cannot be explained, and says so
    with serve(str(onnx_folder)) as (url, _):
        r = client.post(f"{url}/v1/explain", files=files)
    assert (r.status_code, r.json()["error"]) == (422, "explain_unavailable")
    assert "PyTorch flavour" in r.json()["detail"]


def test_explain_pixel_limit_is_its_own(deployed, serve, client) -> None:
    files = [("files", ("big.png", _png(np.zeros((100, 100), np.uint8)), "image/png"))]
    with serve(str(deployed), explain_max_pixels=64 * 64) as (url, _):
        assert client.post(f"{url}/v1/predict", files=files).status_code == 200
        r = client.post(f"{url}/v1/explain", files=files)
    assert (r.status_code, r.json()["error"]) == (413, "too_many_pixels")


def test_explain_rate_limit_per_client(deployed, serve, client) -> None:
    """serving.explain_rate_per_minute per API key (else address): the next call gets 429 with Retry-After."""
    files = [("files", ("a.png", _png(np.full((28, 28), 90, np.uint8)), "image/png"))]
    with serve(str(deployed), explain_rate_per_minute=2) as (url, _):
        first = client.post(f"{url}/v1/explain", files=files, timeout=600)
        refused_target = client.post(f"{url}/v1/explain", params={"target": "nope"}, files=files)  # counts too
        limited = client.post(f"{url}/v1/explain", files=files)
        predict = client.post(f"{url}/v1/predict", files=files)  # only the explain path is limited
        other_key = client.post(f"{url}/v1/explain", files=files, headers={"X-API-Key": "another-client"})
    assert first.status_code == 200 and refused_target.status_code == 422, (first.text, refused_target.text)
    assert (limited.status_code, limited.json()["error"]) == (429, "explain_rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60 and "explain_rate_per_minute=2" in limited.json()["detail"]
    assert predict.status_code == 200 and other_key.status_code == 200, other_key.text


def test_explain_limits_hold_across_workers(deployed, tmp_path) -> None:
    """``medpipe serve --workers 2``: the rate and the concurrency cap count over both workers together. The test
    process takes part as a third process (it holds the one slot, spends one of a client's hits), so a worker that
    kept its own count would be caught whichever worker the kernel hands each connection to."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    from components.serving.explain_limits import ExplainLimits, client_id
    from medpipe.config import ServingConfig
    from tests.helpers.ports import free_port
    from tests.helpers.serving import samples, value
    from tests.helpers.wait import wait_until

    port, home = free_port(), tmp_path / "state"
    cmd = [str(Path(sys.executable).parent / "medpipe"), "serve", "--model", str(deployed), "--port", str(port),
           "--workers", "2", "-S", "export.intra_op_threads=1", "-S", "serving.explain_rate_per_minute=3",
           "-S", "serving.explain_concurrency=1"]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ, "MEDPIPE_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    files = [("files", ("a.png", _png(np.full((28, 28), 90, np.uint8)), "image/png"))]

    def explain(key: str) -> httpx.Response:  # a new connection each time: the kernel spreads them over the workers
        return httpx.post(f"{url}/v1/explain", files=files, headers={"X-API-Key": key}, timeout=600)

    try:

        def both_loaded() -> bool:  # two loads counted across the workers
            return value(samples(httpx.get(f"{url}/metrics", timeout=10).text), "medpipe_model_reloads_total") == 2

        wait_until(both_loaded, "both workers to load the model", 300, procs=[proc], ignore=(httpx.TransportError,))
        shared = ExplainLimits(home / "serve" / str(port) / "limits", ServingConfig(explain_rate_per_minute=3))
        with shared.slot():  # this process runs "the" explanation: every worker must refuse another one
            busy = [explain(f"busy-{i}") for i in range(4)]
        warm = [explain(f"warm-{i}") for i in range(4)]  # the slot is free again; each worker imports captum once
        shared.check_rate(client_id("rate", None))  # one of the client's 3 hits, spent by another process
        rate = [explain("rate") for _ in range(6)]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=60)[0]
    assert [(r.status_code, r.json()["error"]) for r in busy] == [(429, "explain_busy")] * 4, output
    assert [r.status_code for r in warm] == [200] * 4, [r.text for r in warm]
    assert [r.status_code for r in rate] == [200, 200] + [429] * 4, [r.text for r in rate]
    assert {r.json()["error"] for r in rate[2:]} == {"explain_rate_limited"}
    assert "2 workers" in output
