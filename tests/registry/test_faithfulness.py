"""Grad-CAM faithfulness (ROAD) scored at registration, on a real trained model and a real MLflow store."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from medpipe.config import PipelineConfig
from medpipe.settings import Settings


def test_fast_imputer_solves_the_same_system_as_pytorch_grad_cam() -> None:
    import torch
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    from components.evaluation.faithfulness import LinearImputer

    rng = np.random.default_rng(1)
    img = torch.from_numpy(rng.random((3, 17, 23)).astype(np.float32))
    mask = torch.from_numpy((rng.random((17, 23)) > 0.4).astype(np.float32))
    mask[0, :] = 0  # missing pixels on the borders too
    mask[:, -1] = 0
    ours, theirs = LinearImputer(noise=0.0)(img, mask), NoisyLinearImputer(noise=0.0)(img, mask)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.equal(ours[:, mask.bool()], img[:, mask.bool()]) and not torch.allclose(ours, img)


@pytest.mark.slow
def test_road_is_recorded_on_the_registered_version_and_its_card(
    trained, prepared_breastmnist: Path, tmp_path: Path, empty_mlflow_db, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from mlflow import MlflowClient

    from components.evaluation.faithfulness import explanation_faithfulness, road_score
    from components.models.artifacts import load_model_dir
    from components.models.gradcam import grad_cams
    from components.models.inference import InferenceModel
    from components.registry.gate import evaluate_and_promote
    from components.registry.register import register_model

    torch.set_num_threads(1)
    good = trained["good"]
    faith = explanation_faithfulness(good.model_dir, prepared_breastmnist, n_images=32)
    assert faith is not None and faith.n_images == 32 and faith.side == 28
    # removing the pixels Grad-CAM ranks first costs the model more confidence than removing the last ones
    assert faith.morf < faith.lerf and faith.road > 0.05, faith
    # the same sample with the maps inverted (most relevant last) must score below 0: the score can fail
    net, pre = load_model_dir(good.model_dir)
    model = InferenceModel(net, pre).eval()
    from components.data.dataset import load_split

    images = load_split(prepared_breastmnist, "test").images[:32]
    _, targets, maps = grad_cams(model, images)
    inverted, _, _ = road_score(model, images, 1.0 - maps, targets)
    assert inverted < 0 < faith.road
    assert explanation_faithfulness(good.model_dir, prepared_breastmnist, n_images=0) is None

    home = tmp_path / "state"
    empty_mlflow_db(home)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    settings = Settings(home=home)
    cfg = PipelineConfig().with_overrides(
        {
            "registry.model_name": "faithful",
            "registry.positive_class": "malignant",
            "registry.bootstrap_samples": 100,
            "registry.min_primary": 0.6,
            "registry.retries": 0,
        }  # fmt: skip
    )
    version = register_model(good.model_dir, good.onnx_path, settings, registry=cfg.registry, lineage=cfg.lineage(),
                             run_id=None, data_version="d1", metrics={"auc": 0.8}, faithfulness=faith)  # fmt: skip
    client = MlflowClient(settings.tracking_uri)
    mv = client.get_model_version("faithful", version.version)
    assert mv.tags["explain.road"] == f"{faith.road:.4f}" and mv.tags["explain.road_images"] == "32"
    ours = re.escape(f"ROAD on 32 test images (pixels removed: 20,40,60,80 %, at 28 px): **{faith.road:.4f}**")
    assert re.search(ours, mv.description), mv.description
    # the gate rewrites the card from the evaluation: the explanation section stays
    evaluate_and_promote(
        version, prepared_breastmnist, settings, registry=cfg.registry, export=cfg.export, actor="test"
    )
    mv = client.get_model_version("faithful", version.version)
    assert "gate.decision" in mv.tags and re.search(ours, mv.description), mv.description
    assert "(LeRF - MoRF) / 2" in mv.description
