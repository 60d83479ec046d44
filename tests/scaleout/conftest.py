"""Scale-out on real engines, all on loopback: PostgreSQL (one fresh database per use), one shared
``mlflow server`` on it (starting it takes ~1 min on a loaded 2-core box), subprocess workers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.engines import fresh_database, mlflow_server, pg_unavailable


@dataclass(frozen=True)
class MlflowServer:
    url: str
    backend_url: str
    artifacts_dir: Path
    log: Path


@pytest.fixture(scope="session")
def postgres() -> None:
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def mlflow_pg(postgres: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One MLflow tracking server (PostgreSQL backend store, artifacts proxied into a local folder) for the session."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with fresh_database("medpipe_mlflow") as db:
        log = root / "server.log"
        with mlflow_server(db, root / "artifacts", log) as url:
            yield MlflowServer(url, db, root / "artifacts", log)


@pytest.fixture
def pg_database(postgres: None) -> Iterator[str]:
    """A fresh PostgreSQL database (SQLAlchemy URL) for one test, dropped afterwards."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def server_env(mlflow_pg: MlflowServer, medpipe_home: Path, monkeypatch: pytest.MonkeyPatch):
    """This process's settings pointed at the MLflow server (nothing else leaks from the environment)."""
    from medpipe.settings import get_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_pg.url)
    monkeypatch.delenv("MEDPIPE_MLFLOW_ARTIFACTS", raising=False)
    monkeypatch.delenv("MEDPIPE_OPTUNA_STORAGE", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()
    os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)  # set by setup_mlflow for remote servers
    os.environ.pop("MLFLOW_HTTP_REQUEST_TIMEOUT", None)
