"""A real uvicorn server on 127.0.0.1 (in a thread) serving small real models exported to ONNX."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from medpipe.config import ExportConfig, ServingConfig
from medpipe.settings import Settings
from tests.helpers.artefacts import BETTER, Artefact
from tests.helpers.serving import running_server


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
