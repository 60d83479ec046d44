"""``medpipe ui mlflow``: the MLflow UI on the configured store (a local server, or the remote one's URL)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field

from components.tracking import is_remote
from medpipe.config import UIConfig
from medpipe.processes import ProcessExited, start, stop_process_group, wait_for_health
from medpipe.settings import Settings


@dataclass(frozen=True)
class UIPlan:
    url: str
    command: list[str] | None  # None: the tracking store is already a server; just open ``url``
    env: dict[str, str] = field(default_factory=dict)  # set for the server, on top of this process's environment


# MLflow's server starts a job runner by default, which launches a Huey consumer process per GenAI job kind (scorers,
# prompt optimisation, ...): ~8 more Python processes, about half the server's start-up CPU. medpipe runs none.
SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def plan_ui(settings: Settings, ui: UIConfig, port: int | None = None, workers: int = 1) -> UIPlan:
    """What to run for the UI: ``mlflow server`` on the sqlite store and local artifact folder."""
    if is_remote(settings.tracking_uri):
        return UIPlan(url=settings.tracking_uri, command=None)
    port = port or ui.mlflow_port
    settings.home.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        settings.tracking_uri,
        "--registry-store-uri",
        settings.registry_uri,
        "--default-artifact-root",
        settings.artifact_location,
        "--host",
        ui.host,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return UIPlan(url=f"http://{ui.host}:{port}", command=command, env=dict(SERVER_ENV))


def start_ui(plan: UIPlan, **popen: object) -> subprocess.Popen[bytes]:
    """Start the planned server as a child process in its own session (stop it with :func:`stop_ui`)."""
    if plan.command is None:
        raise ValueError(f"the tracking store is the server at {plan.url}; nothing to start")
    return start(plan.command, env={**os.environ, **plan.env}, **popen)


def stop_ui(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    """Stop the server and its workers (the whole process group it leads)."""
    stop_process_group(proc, timeout_s)


def wait_until_up(url: str, timeout_s: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll ``url``/health until it answers 200 (True), the process dies or ``timeout_s`` passes (False)."""
    try:
        return wait_for_health(url.rstrip("/") + "/health", proc, timeout_s, poll_s=0.5)
    except ProcessExited:
        return False
