"""A real training + registration through an MLflow tracking server on PostgreSQL with proxied artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import torch

from components.data.dataset import load_prepared
from components.models.artifacts import load_model_dir
from components.registry.register import register_model
from components.training.train import train_model
from tests.helpers.configs import scaleout_cfg

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _get(url: str, endpoint: str, **query: str) -> dict:
    resp = httpx.get(f"{url}{endpoint}", params=query, timeout=30)
    resp.raise_for_status()
    return resp.json()


def test_training_and_registration_through_pg_backed_server(
    mlflow_pg, server_env, prepared_breastmnist: Path, tmp_path: Path
) -> None:
    import mlflow

    cfg = scaleout_cfg("train.epochs=1", "search.enabled=false", "registry.model_name=scaleout-server")
    result = train_model(
        cfg.for_training(), load_prepared(prepared_breastmnist), server_env, out_dir=tmp_path / "model"
    )
    version = register_model(
        result.model_dir,
        None,
        server_env,
        registry=cfg.registry,
        lineage=cfg.lineage(),
        run_id=result.run_id,
        data_version=None,
        metrics={"auc": 0.5},
    )

    # the server's REST API knows the run, its metrics, the version and the alias
    run = _get(mlflow_pg.url, "/api/2.0/mlflow/runs/get", run_id=result.run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    assert metrics["best_val_auc"] == pytest.approx(result.val_metrics["auc"])
    mv = _get(mlflow_pg.url, "/api/2.0/mlflow/model-versions/get", name="scaleout-server", version=version.version)
    assert mv["model_version"]["status"] == "READY" and mv["model_version"]["run_id"] == result.run_id
    alias = _get(mlflow_pg.url, "/api/2.0/mlflow/registered-models/alias", name="scaleout-server", alias="challenger")
    assert alias["model_version"]["version"] == version.version

    # artifacts went through the server into its destination folder, none into the client's state folder
    stored = {p.name for p in mlflow_pg.artifacts_dir.rglob("*") if p.is_file()}
    assert {"MLmodel", "preprocessing.json", "model.ckpt"} <= stored
    assert not (server_env.home / "mlartifacts").exists()

    # ...and come back: the run's model folder over the REST artifact endpoint, the registered model via models:/
    listing = _get(mlflow_pg.url, "/api/2.0/mlflow/artifacts/list", run_id=result.run_id, path="model_dir")
    assert {"model_dir/model.ckpt", "model_dir/preprocessing.json"} <= {f["path"] for f in listing["files"]}
    artifact = _get(mlflow_pg.url, "/get-artifact", run_uuid=result.run_id, path="model_dir/preprocessing.json")
    assert artifact == json.loads((result.model_dir / "preprocessing.json").read_text())
    got = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/scaleout-server/{version.version}", dst_path=str(tmp_path / "dl")
        )
    )
    assert (got / "MLmodel").is_file() and (got / "model_card.md").is_file()
    served = mlflow.pytorch.load_model("models:/scaleout-server@challenger", map_location="cpu")
    local, _ = load_model_dir(result.model_dir)
    x = torch.randn(4, 1, 28, 28)
    with torch.inference_mode():
        assert torch.allclose(served.eval()(x), local.eval()(x), atol=1e-5)
