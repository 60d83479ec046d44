"""medpipe.processes.wait_for_health: the one wait for a child server (Prefect server, MLflow UI) to answer."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medpipe.processes import ProcessExited, stop_process_group, wait_for_health
from tests.helpers.ports import free_port


def test_a_server_that_answers_is_up_one_that_never_does_times_out() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    assert wait_for_health(url, None, timeout_s=1.0, poll_s=0.2) is False  # nothing listens
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    try:
        assert wait_for_health(url, server, timeout_s=60, poll_s=0.2) is True
    finally:
        stop_process_group(server, timeout_s=10)


def test_a_server_that_exits_first_is_reported_not_waited_for() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])  # noqa: S603
    gone.wait()
    with pytest.raises(ProcessExited, match="exited with code 3"):
        wait_for_health(f"http://127.0.0.1:{free_port()}/", gone, timeout_s=60)
