"""A real uvicorn server on 127.0.0.1 (in a thread) serving small real models exported to ONNX."""

from __future__ import annotations

import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from model_fixtures import train_model_dir  # noqa: E402

from components.deploy.export import export_onnx  # noqa: E402
from medpipe.config import ExportConfig, ServingConfig  # noqa: E402
from medpipe.settings import Settings  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _served_folder(prepared: Path, root: Path, seed: int) -> Path:
    model_dir = train_model_dir(prepared, root / "trained", epochs=2, seed=seed)
    served = root / "served"
    export_onnx(model_dir, served / "model.onnx", ExportConfig())
    shutil.copy(model_dir / "preprocessing.json", served / "preprocessing.json")
    return served


@pytest.fixture(scope="session")
def onnx_folder(prepared_breastmnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local model folder (model.onnx + preprocessing.json)."""
    torch.set_num_threads(1)
    return _served_folder(prepared_breastmnist, tmp_path_factory.mktemp("model_a"), seed=0)


@pytest.fixture(scope="session")
def onnx_folder_b(prepared_breastmnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, differently trained model folder (the next champion in reload tests)."""
    torch.set_num_threads(1)
    return _served_folder(prepared_breastmnist, tmp_path_factory.mktemp("model_b"), seed=1)


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
