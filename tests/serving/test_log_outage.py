"""The inference log becomes read-only under a running server: never silent, nothing acknowledged is lost.

Real uvicorn, real SQLite file made unwritable (``chattr +i`` as root, where permissions do not apply;
``chmod`` otherwise). While it is unwritable, predictions are held in a bounded buffer, ``/v1/ready`` says
why it is not ready and the failure is a Prometheus metric; once the buffer is full, requests get 503.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from components.serving.inference_log import InferenceLog
from medpipe.settings import Settings


def _npy_files(n: int) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = []
    for i in range(n):
        buf = io.BytesIO()
        np.save(buf, np.full((28, 28), 40 * i, np.uint8))
        files.append(("files", (f"img{i}.npy", buf.getvalue(), "application/octet-stream")))
    return files


@contextmanager
def read_only(path: Path):
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)]).returncode != 0:
            pytest.skip("running as root without a working chattr: cannot make a file unwritable")
        undo = ["chattr", "-i", str(path)]
    else:
        path.chmod(0o444)
        undo = None
    try:
        yield
    finally:
        subprocess.run(undo, check=True) if undo else path.chmod(0o644)


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_unwritable_log_is_not_ready_then_503_and_loses_nothing(onnx_folder, serve, client, tmp_path) -> None:
    settings = Settings(home=tmp_path / "state")
    with serve(str(onnx_folder), settings=settings, log_buffer_rows=3) as (url, _):
        assert client.post(f"{url}/v1/predict", files=_npy_files(1)).status_code == 200
        assert client.get(f"{url}/v1/ready").status_code == 200
        with read_only(settings.inference_log):
            # Held in memory: still answered, but the server says it is not ready and why.
            r = client.post(f"{url}/v1/predict", files=_npy_files(2))
            assert r.status_code == 200, r.text
            ready = client.get(f"{url}/v1/ready")
            assert ready.status_code == 503 and "not writable" in ready.json()["detail"], ready.text
            assert "2/3 rows held in memory" in ready.json()["detail"]
            assert client.get(f"{url}/v2/health/ready").status_code == 503
            metrics = client.get(f"{url}/metrics").text
            assert _metric(metrics, "medpipe_inference_log_write_failures_total") >= 1
            assert _metric(metrics, "medpipe_inference_log_pending_rows") == 2
            assert client.post(f"{url}/v1/predict", files=_npy_files(1)).status_code == 200  # 3/3
            # The buffer is full: refused with a clear code, not answered and then lost.
            r = client.post(f"{url}/v1/predict", files=_npy_files(1))
            assert (r.status_code, r.json()["error"]) == (503, "inference_log_unavailable"), r.text
            assert InferenceLog(settings.inference_log).count() == 1
        # Writable again: the next request writes the held rows first, and the server is ready again.
        assert client.post(f"{url}/v1/predict", files=_npy_files(1)).status_code == 200
        assert client.get(f"{url}/v1/ready").status_code == 200
        assert _metric(client.get(f"{url}/metrics").text, "medpipe_inference_log_pending_rows") == 0
    log = InferenceLog(settings.inference_log).read_window()
    assert len(log) == 1 + 2 + 1 + 1  # every acknowledged prediction, none of the refused one
    assert log["timestamp"].is_monotonic_increasing  # held rows keep the time they were served
