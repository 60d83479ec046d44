"""Supervision of the long-running child processes some commands start (Prefect server, Evidently UI)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def executable(name: str) -> str:
    """The console script ``name`` of this interpreter's environment (else whatever ``PATH`` finds)."""
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else name


def terminate(proc: subprocess.Popen, timeout_s: float) -> None:
    """Stop a process this command started: SIGTERM, then SIGKILL if it is still up after ``timeout_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_until_interrupted(proc: subprocess.Popen, stop_timeout_s: float) -> None:
    """Wait for ``proc``; Ctrl-C (or any error) stops it."""
    try:
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        terminate(proc, timeout_s=stop_timeout_s)


class ProcessExited(RuntimeError):
    """The supervised process ended before it answered."""


def wait_for_health(url: str, proc: subprocess.Popen, timeout_s: float, poll_s: float = 1.0) -> bool:
    """Poll ``url`` until it answers 200 (True) or ``timeout_s`` passes (False).

    Raises :class:`ProcessExited` when ``proc`` ends first."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise ProcessExited(f"exited with code {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)  # polling interval of an external process, not synchronisation between our threads
