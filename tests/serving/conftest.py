"""A real uvicorn server on 127.0.0.1 (in a thread) serving small real models exported to ONNX."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from medpipe.config import ExportConfig, ServingConfig
from medpipe.settings import Settings
from tests.helpers.artefacts import BETTER, Artefact
from tests.helpers.ports import free_port


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus text exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls))


@pytest.fixture(scope="session")
def cnn_a(trained_cnn_dir: Path, served_cnn_dir: Path) -> Artefact:
    """The session's ``GOOD`` model: its training folder and its served folder (read-only)."""
    return Artefact(trained_cnn_dir, served_cnn_dir)


@pytest.fixture(scope="session")
def cnn_b(trained_cnn: Callable[..., Path], served_cnn: Callable[[Path], Path]) -> Artefact:
    """A second, differently seeded model (``BETTER``; the next champion in reload tests; read-only)."""
    model_dir = trained_cnn(BETTER)
    return Artefact(model_dir, served_cnn(model_dir))


@pytest.fixture(scope="session")
def onnx_folder(cnn_a: Artefact) -> Path:
    """A local model folder (model.onnx + preprocessing.json) of ``trained_cnn_dir`` (read-only)."""
    return cnn_a.served_dir


@pytest.fixture(scope="session")
def onnx_folder_b(cnn_b: Artefact) -> Path:
    """The served folder of :func:`cnn_b` (read-only)."""
    return cnn_b.served_dir


@contextmanager
def running_server(app, timeout_s: float = 30.0) -> Iterator[str]:  # noqa: ANN001 - FastAPI app
    """Run ``app`` under a real uvicorn server on a free 127.0.0.1 port; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)


@pytest.fixture
def serve(tmp_path: Path) -> Callable[..., object]:
    """``with serve(model_uri, **serving_overrides) as (url, settings):`` runs a server for one test."""
    from components.serving.app import create_app

    @contextmanager
    def _serve(model_uri: str, settings: Settings | None = None, **overrides: object) -> Iterator[tuple[str, Settings]]:
        settings = settings or Settings(home=tmp_path / "state")
        cfg = ServingConfig(**{"reload_interval_s": 3600.0, **overrides})
        app = create_app(settings, cfg, ExportConfig(), model_uri)
        with running_server(app) as url:
            yield url, settings

    return _serve


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30.0) as c:
        yield c
