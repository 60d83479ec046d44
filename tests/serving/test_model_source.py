"""Serving resolves models:/<name>@champion from a real MLflow registry (tmp SQLite) and hot-swaps it."""

from __future__ import annotations

import io
import shutil

import httpx
import numpy as np
import pytest

from components.registry.store import parse_registry_uri
from components.serving.model_source import load_model, model_marker
from medpipe.config import ExportConfig
from medpipe.errors import RegistryError
from medpipe.settings import Settings
from tests.helpers.artefacts import register

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path, empty_mlflow_db) -> Settings:
    return Settings(home=tmp_path / "state", mlflow_tracking_uri=empty_mlflow_db(tmp_path))


def _register(artefact, name: str, settings: Settings) -> str:
    return register(artefact, name, settings, tags={"parity.passed": "true"})


def _set_champion(name: str, version: str) -> None:
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(name, "champion", version)


def test_parse_registry_uri() -> None:
    assert parse_registry_uri("models:/m@champion") == ("m", "champion", None)
    assert parse_registry_uri("models:/m/3") == ("m", None, "3")
    assert parse_registry_uri("/some/folder") is None


def test_serves_registered_champion_and_swaps(cnn_a, cnn_b, serve, settings) -> None:
    v1 = _register(cnn_a, "clf", settings)
    v2 = _register(cnn_b, "clf", settings)
    uri = "models:/clf@champion"
    with pytest.raises(RegistryError, match="cannot resolve models:/clf@champion"):
        model_marker(uri, settings)
    _set_champion("clf", v1)
    model = load_model(uri, ExportConfig(), settings)
    assert (model.version, model.gates["parity.passed"], model.tags["test.auc"]) == (v1, "true", "0.81")
    assert model.preprocessing.class_names == ["malignant", "normal_or_benign"]

    arr = io.BytesIO()
    np.save(arr, np.full((28, 28), 120, np.uint8))
    with serve(uri, settings=settings) as (url, _):
        info = httpx.get(f"{url}/v1/model").json()
        assert (info["version"], info["gates"]["parity.passed"]) == (v1, "true")
        _set_champion("clf", v2)
        r = httpx.post(f"{url}/v1/reload", timeout=60).json()
        assert r == {"reloaded": True, "previous_version": v1, "version": v2}
        pred = httpx.post(f"{url}/v1/predict", files=[("files", ("a.npy", arr.getvalue(), "x"))], timeout=60)
        assert pred.json()["model"] == {"name": "clf", "version": v2}
        assert httpx.post(f"{url}/v1/reload", timeout=60).json()["reloaded"] is False


def test_truly_registered_model(trained_model_dir_for_registry, settings, serve) -> None:
    """A version written by components.registry.register, promoted to champion, served as-is."""
    register = pytest.importorskip("components.registry.register")
    from components.registry.aliases import move_alias
    from medpipe.config import PipelineConfig

    model_dir, onnx_path = trained_model_dir_for_registry
    import mlflow

    cfg = PipelineConfig()
    mlflow.set_tracking_uri(settings.tracking_uri)
    with mlflow.start_run() as run:  # the training run the model came from
        pass
    reg = register.register_model(
        model_dir,
        onnx_path,
        settings,
        registry=cfg.registry,
        lineage=cfg.lineage(),
        run_id=run.info.run_id,
        data_version="v1",
        metrics={"auc": 0.8},
    )
    move_alias(settings, cfg.registry, "champion", reg.version, action="promote", reason="test", actor="test")
    with serve(f"models:/{cfg.registry.model_name}@champion", settings=settings) as (url, _):
        info = httpx.get(f"{url}/v1/model").json()
        assert info["version"] == reg.version and info["data_version"] in ("v1", "test-data-v1")
        arr = io.BytesIO()
        np.save(arr, np.full((28, 28), 90, np.uint8))
        pred = httpx.post(f"{url}/v1/predict", files=[("files", ("a.npy", arr.getvalue(), "x"))], timeout=60)
        assert pred.status_code == 200, pred.text


@pytest.fixture
def trained_model_dir_for_registry(trained_cnn_dir, onnx_folder, tmp_path):
    model_dir = shutil.copytree(trained_cnn_dir, tmp_path / "trained")
    return model_dir, onnx_folder / "model.onnx"


def test_signal_reload(onnx_folder, serve, tmp_path) -> None:
    import socket

    from components.serving.reload import signal_reload
    from medpipe.config import ServingConfig

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        unused = s.getsockname()[1]
    assert signal_reload(ServingConfig(port=unused), Settings(home=tmp_path)) is False  # nobody listening
    with serve(str(onnx_folder)) as (url, settings):
        port = int(url.rsplit(":", 1)[1])
        assert signal_reload(ServingConfig(port=port), settings) is False  # same model: nothing to swap
