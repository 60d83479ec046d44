"""Supervision of the long-running child processes some commands start (Prefect server, Evidently UI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from medpipe.processes import stop_process_group


def executable(name: str) -> str:
    """The console script ``name`` of this interpreter's environment (else whatever ``PATH`` finds)."""
    exe = Path(sys.executable).with_name(name)
    return str(exe) if exe.exists() else name


def stop_on_signals() -> None:
    """Make SIGTERM behave like Ctrl-C (KeyboardInterrupt), so that every ``finally`` that stops a child
    process runs when a service manager, ``docker stop`` or ``kill`` ends the command; and make SIGINT
    interrupt even when a non-interactive shell started the command in the background (``cmd &``), which
    leaves SIGINT ignored: ``kill -INT`` would then never stop ``medpipe ui``/``serve``/``schedule``."""
    import signal

    def _interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_until_interrupted(proc: subprocess.Popen, stop_timeout_s: float) -> None:
    """Wait for ``proc``; Ctrl-C (or any error) stops it."""
    try:
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_process_group(proc, timeout_s=stop_timeout_s)
