"""Real engines on loopback for the scale-out tests and the HPO benchmark: a fresh PostgreSQL database per use,
an ``mlflow server`` on it, and subprocesses that are always stopped (their whole process group).

Everything binds 127.0.0.1 on a free port and every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

from tests.helpers.ports import free_port
from tests.helpers.wait import wait_until

PG_HOST = os.environ.get("MEDPIPE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MEDPIPE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("MEDPIPE_TEST_PG_USER", "postgres")
REPO_ROOT = Path(__file__).resolve().parents[2]


def pg_url(db: str) -> str:
    return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"


def pg_unavailable() -> str | None:
    """None when PostgreSQL answers on PG_HOST:PG_PORT, else why not (a skip reason)."""
    import psycopg

    try:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5):
            return None
    except psycopg.Error as err:
        return f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT} as {PG_USER} ({str(err).strip()[:200]})"


@contextmanager
def fresh_database(prefix: str = "medpipe") -> Iterator[str]:
    """CREATE DATABASE <prefix>_<uuid>; yield its SQLAlchemy URL; DROP it (forcing out leftover connections)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_url(name)
    finally:
        with psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early when ``proc`` exits, with the tail of its ``log``."""

    def answers() -> bool:
        return httpx.get(url, timeout=5).status_code == 200

    wait_until(answers, f"{url} to answer 200", timeout_s, procs=[proc] if proc is not None else [],
               ignore=(httpx.HTTPError, OSError), every_s=0.5, detail=lambda: tail(log))  # fmt: skip


def tail(log: Path | None, n: int = 4000) -> str:
    if log is None or not log.is_file():
        return ""
    return log.read_text(errors="replace")[-n:]


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a medpipe/engine subprocess: offline, few threads, plus ``extra``."""
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def start(argv: list[str], log: Path, env: dict[str, str], cwd: Path = REPO_ROOT) -> subprocess.Popen:
    """Start ``argv`` in its own process group (so :func:`stop` also ends its children), output into ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group ``proc`` leads, SIGKILL it after ``timeout_s``."""
    if proc.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout_s)
    with suppress(ProcessLookupError, PermissionError):  # workers left behind by a leader that already exited
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout=10)


@contextmanager
def mlflow_server(backend_url: str, artifacts_dir: Path, log: Path, timeout_s: float = 240.0) -> Iterator[str]:
    """``mlflow server`` on ``backend_url`` (tracking + registry) proxying artifacts into ``artifacts_dir``."""
    port = free_port()
    argv = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", backend_url,
        "--artifacts-destination", str(artifacts_dir),
        "--serve-artifacts",
        "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    from components.registry.ui import SERVER_ENV  # no GenAI job runner: half the server's start-up CPU

    proc = start(argv, log, child_env(**SERVER_ENV))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", timeout_s, proc, log)
        yield url
    finally:
        stop(proc)
