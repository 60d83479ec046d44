"""``/metrics`` scraped from a real server: one process, and ``medpipe serve --workers 2`` (multiprocess mode)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.helpers.ports import free_port
from tests.helpers.serving import samples, value
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.slow

NPY = [("files", ("a.npy", b"", "x"))]


def npy_files(n: int, rng: np.random.Generator) -> list:
    import io

    out = []
    for i in range(n):
        buf = io.BytesIO()
        np.save(buf, rng.integers(0, 256, (28, 28), dtype=np.uint8))
        out.append(("files", (f"{i}.npy", buf.getvalue(), "application/octet-stream")))
    return out


def test_metrics_one_process(onnx_folder, onnx_folder_b, serve, client, tmp_path) -> None:
    current = tmp_path / "current"
    shutil.copytree(onnx_folder, current)
    rng = np.random.default_rng(0)
    with serve(str(current)) as (url, _):
        version_a = client.get(f"{url}/v1/model").json()["version"]
        for n in (1, 3, 2):
            assert client.post(f"{url}/v1/predict", files=npy_files(n, rng)).status_code == 200
        assert client.post(f"{url}/v1/predict", json={"pictures": []}).status_code == 422
        shutil.copy(onnx_folder_b / "model.onnx", current / "model.onnx")
        assert client.post(f"{url}/v1/reload").json()["reloaded"] is True
        version_b = client.get(f"{url}/v1/model").json()["version"]
        assert client.post(f"{url}/v1/predict", files=npy_files(4, rng)).status_code == 200
        r = client.get(f"{url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    found = samples(r.text)
    total = "medpipe_http_requests_total"
    assert value(found, total, route="/v1/predict", method="POST", status="200") == 4
    assert value(found, total, route="/v1/predict", method="POST", status="422") == 1
    assert value(found, "medpipe_http_request_duration_seconds_count", route="/v1/predict") == 5
    assert value(found, "medpipe_inference_batch_size_sum") == 10  # every image went through one batch
    assert value(found, "medpipe_inference_queue_wait_seconds_count") == 4  # one wait per request
    assert value(found, "medpipe_predictions_total", model_version=version_a) == 6
    assert value(found, "medpipe_predictions_total", model_version=version_b) == 4
    assert value(found, "medpipe_model_loaded", version=version_a) == 0
    assert value(found, "medpipe_model_loaded", version=version_b) == 1
    assert value(found, "medpipe_model_reloads_total", result="swapped") == 2  # the start, then the swap


def test_metrics_summed_over_workers(onnx_folder, tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "MEDPIPE_HOME": str(tmp_path / "state")}
    medpipe = str(Path(sys.executable).parent / "medpipe")
    cmd = [medpipe, "serve", "--model", str(onnx_folder), "--port", str(port),
           "--workers", "2", "-S", "export.intra_op_threads=1"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=30) as client:

            def both_loaded() -> bool:  # two loads counted across the workers
                return value(samples(client.get(f"{url}/metrics").text), "medpipe_model_reloads_total") == 2

            wait_until(both_loaded, "both workers to load the model", 180, procs=[proc], ignore=(httpx.TransportError,))
            rng = np.random.default_rng(1)
            for _ in range(12):  # new connections: the kernel spreads them over both workers
                assert httpx.post(f"{url}/v1/predict", files=npy_files(2, rng), timeout=30).status_code == 200
            found = samples(client.get(f"{url}/metrics").text)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=60)[0]
    assert value(found, "medpipe_http_requests_total", route="/v1/predict", status="200") == 12, output
    assert value(found, "medpipe_predictions_total") == 24
    assert value(found, "medpipe_inference_batch_size_sum") == 24
    assert value(found, "medpipe_model_loaded") == 1  # livemax: the one version, however many workers hold it
    assert "2 workers" in output


def test_single_worker_writes_no_sample_files_with_an_empty_multiproc_dir(onnx_folder, tmp_path) -> None:
    """PROMETHEUS_MULTIPROC_DIR set but empty once made prometheus-client write counter_<pid>.db files into the
    working directory (the checkout root, from benchmarks/serve_load.py); `medpipe serve` reads empty as unset."""
    port, cwd = free_port(), tmp_path / "cwd"
    cwd.mkdir()
    env = {**os.environ, "MEDPIPE_HOME": str(tmp_path / "state"), "PROMETHEUS_MULTIPROC_DIR": ""}
    cmd = [str(Path(sys.executable).parent / "medpipe"), "serve", "--model", str(onnx_folder), "--port", str(port),
           "--params", str(Path(__file__).resolve().parents[2] / "params.yaml")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/v1/ready", timeout=5).status_code == 200,
            "the server to be ready",
            180,
            procs=[proc],
            ignore=(httpx.TransportError,),
        )
        assert httpx.post(f"{url}/v1/predict", files=npy_files(2, np.random.default_rng(2)), timeout=30).is_success
        found = samples(httpx.get(f"{url}/metrics", timeout=30).text)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=60)[0]
    assert value(found, "medpipe_predictions_total") == 2, output
    assert sorted(p.name for p in cwd.iterdir()) == []  # no counter_*.db / histogram_*.db / gauge_*.db
