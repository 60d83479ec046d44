"""Child processes that serve something (MLflow UI, Prefect server): waiting until one answers, and stopping it
with everything it spawned (the one place that knows about process groups)."""

from __future__ import annotations

import os
import signal
import subprocess


def start(cmd: list[str], **popen: object) -> subprocess.Popen:
    """Start a long-running child in its own process group (session), so that stopping it stops its workers too."""
    return subprocess.Popen(cmd, start_new_session=True, **popen)  # noqa: S603 - our own argv


def stop_process_group(proc: subprocess.Popen, timeout_s: float) -> None:
    """SIGTERM the process group ``proc`` leads (started with ``start_new_session=True``), then SIGKILL if
    anything is still up after ``timeout_s``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout_s)


class ProcessExited(RuntimeError):
    """The supervised process ended before it answered."""


def wait_for_health(url: str, proc: subprocess.Popen | None, timeout_s: float, poll_s: float = 1.0) -> bool:
    """Poll ``url`` every ``poll_s`` (tenacity) until it answers 200 (True) or ``timeout_s`` passes (False).

    Raises :class:`ProcessExited` when ``proc`` ends first."""
    import httpx
    from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

    def answered() -> bool:
        if proc is not None and proc.poll() is not None:
            raise ProcessExited(f"exited with code {proc.returncode}")
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    polls = Retrying(
        retry=retry_if_result(lambda up: not up),
        stop=stop_after_delay(timeout_s),
        wait=wait_fixed(poll_s),
        retry_error_callback=lambda _: False,
    )
    return polls(answered)
