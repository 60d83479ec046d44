"""Long-running commands stop every child they started when they get SIGTERM (service managers, docker stop)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_monitor_ui_stops_the_evidently_server_and_its_children(tmp_path, sig) -> None:
    port = _free_port()
    env = {**os.environ, "MEDPIPE_HOME": str(tmp_path / "state"), "DO_NOT_TRACK": "1"}
    cmd = [sys.executable, "-m", "medpipe", "monitor", "ui", "--port", str(port)]
    cmd += ["--params", str(REPO_ROOT / "params.yaml")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        medpipe = psutil.Process(proc.pid)
        with httpx.Client() as client:  # the UI answers: its server process (and any workers) are up
            deadline, start = 240.0, time.monotonic()
            while True:
                assert proc.poll() is None, proc.stdout.read()
                try:
                    if client.get(f"http://127.0.0.1:{port}/", timeout=2).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() - start < deadline, "the Evidently UI never answered"
                time.sleep(0.5)  # polling another process's readiness
        children = medpipe.children(recursive=True)
        assert children, "medpipe started no child process"

        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"children survived {sig.name}: {[p.pid for p in alive]}"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
