"""Canary and shadow serving against a real MLflow registry (champion + challenger aliases) and a real server."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from scipy.stats import binom

from components.deploy.runtime import create_session, run_session
from components.serving.inference_log import InferenceLog
from medpipe.config import CanaryConfig, ExportConfig
from medpipe.settings import Settings
from tests.helpers.artefacts import register
from tests.helpers.serving import samples, value

pytestmark = pytest.mark.slow


@pytest.fixture
def registry(tmp_path, empty_mlflow_db, cnn_a, cnn_b) -> tuple[Settings, str, str]:
    """``clf``: version 1 (``cnn_a``, served from ``onnx_folder``) is @champion, version 2 (``cnn_b``) @challenger."""
    import mlflow

    settings = Settings(home=tmp_path / "state", mlflow_tracking_uri=empty_mlflow_db(tmp_path))
    champion = register(cnn_a, "clf", settings)
    challenger = register(cnn_b, "clf", settings)
    client = mlflow.MlflowClient(settings.tracking_uri)
    client.set_registered_model_alias("clf", "champion", champion)
    client.set_registered_model_alias("clf", "challenger", challenger)
    return settings, champion, challenger


def _image(i: int) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(i).integers(0, 256, (28, 28), dtype=np.uint8))
    return buf.getvalue()


def _predict(url: str, n: int) -> list[httpx.Response]:
    def one(i: int) -> httpx.Response:
        return client.post(f"{url}/v1/predict", files=[("files", (f"{i}.npy", _image(i), "x"))])

    with httpx.Client(timeout=60) as client, ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


def test_canary_share_within_binomial_bounds(registry, serve) -> None:
    settings, champion, challenger = registry
    n, share = 1000, 0.2
    with serve("models:/clf@champion", settings=settings, canary=CanaryConfig(share=share)) as (url, _):
        info = httpx.get(f"{url}/v1/model").json()
        assert (info["version"], info["challenger_version"]) == (champion, challenger)
        responses = _predict(url, n)
        metrics = httpx.get(f"{url}/metrics").text
    assert [r.status_code for r in responses] == [200] * n  # 0 errors
    answered = [r.headers["x-model-version"] for r in responses]
    assert answered == [r.json()["model"]["version"] for r in responses]
    canary = answered.count(challenger)
    low, high = binom.interval(0.999, n, share)
    assert low <= canary <= high and answered.count(champion) == n - canary
    rows = InferenceLog(settings.inference_log).read_window(include_shadow=True)
    by_request = dict(zip(rows.request_id, zip(rows.model_version, rows.role, strict=True), strict=True))
    assert len(by_request) == n
    for r in responses:  # the log records which model answered each request, and in which role
        expected = (challenger, "canary") if r.headers["x-model-version"] == challenger else (champion, "champion")
        assert by_request[r.json()["request_id"]] == expected
    found = samples(metrics)
    assert value(found, "medpipe_predictions_total", role="canary", model_version=challenger) == canary
    assert value(found, "medpipe_predictions_total", role="champion", model_version=champion) == n - canary


def test_shadow_scores_both_and_answers_with_the_champion(registry, serve, onnx_folder, onnx_folder_b) -> None:
    settings, champion, challenger = registry
    n = 40
    with serve("models:/clf@champion", settings=settings, canary=CanaryConfig(mode="shadow")) as (url, _):
        responses = _predict(url, n)
    assert {(r.status_code, r.headers["x-model-version"]) for r in responses} == {(200, champion)}
    log = InferenceLog(settings.inference_log)
    served = log.read_window()
    assert len(served) == n and set(served.model_version) == {champion} and set(served.role) == {"champion"}
    everything = log.read_window(include_shadow=True)
    shadow = everything[everything.role == "shadow"]
    assert len(shadow) == n and set(shadow.model_version) == {challenger}
    assert set(shadow.request_id) == set(served.request_id)  # feedback on a request labels both models' rows
    images = np.stack([np.load(io.BytesIO(_image(i))) for i in range(n)])[:, None].astype(np.float32)
    for folder, rows in ((onnx_folder, served), (onnx_folder_b, shadow)):  # each row is its own model's output
        _, embedding = run_session(create_session(folder / "model.onnx", ExportConfig()), images)
        order = [int(f.removesuffix(".npy")) for f in rows.filename]
        np.testing.assert_allclose(np.stack(rows.embedding.to_list()), embedding[order], rtol=1e-4, atol=1e-4)


def test_missing_challenger_leaves_the_champion_answering(registry, serve) -> None:
    settings, champion, _ = registry
    with serve("models:/clf@champion", settings=settings, canary=CanaryConfig(alias="nope", share=1.0)) as (url, _):
        info = httpx.get(f"{url}/v1/model").json()
        responses = _predict(url, 5)
    assert info["challenger_version"] is None and "models:/clf@nope" in info["challenger_error"]
    assert {(r.status_code, r.headers["x-model-version"]) for r in responses} == {(200, champion)}
