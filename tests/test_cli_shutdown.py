"""Long-running commands stop every child they started when they get SIGTERM (service managers, docker stop)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers.ports import free_port
from tests.helpers.wait import wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]


# Generous bounds: each wait ends as soon as its condition holds, so an idle box is no slower, and a box
# loaded by a parallel suite (load average >> cores) still gets there.
READY_S, STOP_S = 300.0, 180.0


def _listening_child(medpipe: psutil.Process, port: int) -> psutil.Process | None:
    """The descendant of ``medpipe`` that listens on ``port`` (not just any process that answers there)."""
    for child in medpipe.children(recursive=True):
        try:
            if any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in child.net_connections("inet")):
                return child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def _wait_until_served(proc: subprocess.Popen, port: int, log: Path) -> None:
    """Until a child of ``proc`` listens on ``port`` and answers HTTP there."""
    medpipe = psutil.Process(proc.pid)
    with httpx.Client() as client:

        def served() -> bool:
            return (
                _listening_child(medpipe, port) is not None
                and client.get(f"http://127.0.0.1:{port}/", timeout=10).status_code < 500
            )

        wait_until(served, "the Evidently UI to answer", READY_S, procs=[proc], ignore=(httpx.HTTPError,),
                   every_s=0.5, detail=log.read_text)  # fmt: skip


@pytest.mark.slow  # starts the Evidently UI server twice
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_ui_evidently_stops_the_evidently_server_and_its_children(tmp_path, sig) -> None:
    port = free_port()
    env = {**os.environ, "MEDPIPE_HOME": str(tmp_path / "state"), "DO_NOT_TRACK": "1"}
    cmd = [sys.executable, "-m", "medpipe", "ui", "evidently", "--port", str(port)]
    cmd += ["--params", str(REPO_ROOT / "params.yaml")]
    log = tmp_path / "ui.log"  # a file, not a pipe nobody reads: a full pipe would block the server's shutdown logs
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_until_served(proc, port, log)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "medpipe started no child process"

        proc.send_signal(sig)
        assert proc.wait(timeout=STOP_S) == 0, log.read_text()
        gone, alive = psutil.wait_procs(children, timeout=STOP_S)
        assert not alive, f"children survived {sig.name}: {[p.pid for p in alive]}"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
