"""``train.seeds`` / ``train.ensemble`` on real BreastMNIST: the quick CNN, one epoch, two seeds.

The ensemble is trained, exported as one ONNX graph, gated by parity, given its operating point, evaluated,
registered and downloaded from the registry as serving does; its probabilities must be the mean of the members'.
Without ``ensemble`` the registered model is member 1 alone. The members' mean +- sd lands on the MLflow runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from components.models.artifacts import read_model_dir
from tests.helpers.configs import smoke_cfg

pytestmark = pytest.mark.slow  # two trainings + three exports: ~1 min on the shared box

SEEDS = ("search.enabled=false", "train.epochs=1", "train.seeds=2", "registry.positive_class=malignant")


def _register(trained, cfg, prepared: Path, settings, tmp_path: Path):  # noqa: ANN001, ANN202
    from components.deploy.stage import deploy_model
    from components.evaluation.evaluate import evaluate_served
    from components.evaluation.seeds import evaluate_members, log_seed_report
    from components.evaluation.served import stamp_operating_point
    from components.registry.register import register_model
    from components.registry.store import download_version

    export = deploy_model(trained.model_dir, tmp_path / "onnx" / "model.onnx", prepared, cfg.export)
    assert export.passed, export.report.reason
    stamp_operating_point(export.onnx_path, prepared, cfg.registry, cfg.export)
    evaluation = evaluate_served(export.onnx_path, prepared, registry=cfg.registry, export=cfg.export)
    report = evaluate_members(trained, prepared, registry=cfg.registry, export=cfg.export, train=cfg.train)
    log_seed_report(settings, trained, report)
    reg = register_model(
        trained.model_dir, export.onnx_path, settings, registry=cfg.registry, lineage=cfg.lineage(),
        run_id=trained.run_id, data_version=None, parity=export.report, evaluation=evaluation,
    )  # fmt: skip
    return export, report, download_version(reg.name, reg.version, settings)


def test_ensemble_is_one_graph_of_mean_probabilities(prepared_breastmnist: Path, settings, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from components.data.dataset import load_prepared, load_split
    from components.deploy.runtime import create_session, run_session
    from components.models.artifacts import load_model_dir
    from components.models.inference import InferenceModel, predict, to_pixels
    from components.training.final import train_best

    torch.set_num_threads(1)
    cfg = smoke_cfg(*SEEDS, "train.ensemble=true")
    trained = train_best(cfg.for_training(), load_prepared(prepared_breastmnist), settings, out_dir=tmp_path / "model")
    assert trained.is_ensemble and len(trained.members) == 2
    assert trained.run_id == trained.seeds_run_id not in {m.run_id for m in trained.members}
    export, report, registered = _register(trained, cfg, prepared_breastmnist, settings, tmp_path)

    graphs = sorted(registered.rglob("*.onnx"))
    assert [g.name for g in graphs] == ["model.onnx"], graphs  # one graph, not one per member
    proto = onnx.load(str(graphs[0]))
    assert [o.name for o in proto.graph.output] == ["probabilities", "embedding"]
    assert [i.name for i in proto.graph.input] == ["pixels"]

    test = load_split(prepared_breastmnist, "test")
    session = create_session(graphs[0], cfg.export)
    served, embedding = run_session(session, to_pixels(test.images).numpy())
    members = [predict(InferenceModel(*load_model_dir(m.model_dir)), test.images)[0] for m in trained.members]
    np.testing.assert_allclose(served, np.mean(members, axis=0), atol=1e-5)
    assert not np.allclose(members[0], members[1], atol=1e-3)  # two different seeds: the mean is not either one
    assert embedding.shape == (len(test.images), 2 * 256)  # both members' embeddings, for drift monitoring
    assert export.report.max_abs_diff <= cfg.export.parity_atol  # parity: ONNX vs the PyTorch members' average

    client = MlflowClient(settings.tracking_uri)
    metrics = client.get_run(trained.run_id).data.metrics
    aucs = [r.metrics["auc"] for r in report.members]
    assert metrics["seeds_n"] == 2
    assert metrics["seeds_auc_mean"] == pytest.approx(np.mean(aucs))
    assert metrics["seeds_auc_sd"] == pytest.approx(np.std(aucs, ddof=1))
    for key in ("sensitivity", "specificity"):
        assert f"seeds_{key}_mean" in metrics and f"seeds_{key}_sd" in metrics
        assert metrics[f"seeds_member1_{key}_ci_low"] <= metrics[f"seeds_member1_{key}"]
    for member, result in zip(trained.members, report.members, strict=True):  # each member's own served figures
        assert client.get_run(member.run_id).data.metrics["test_auc"] == pytest.approx(result.metrics["auc"])
    card = (registered / "model_card.md").read_text() if (registered / "model_card.md").is_file() else ""
    card = card or client.get_model_version(cfg.registry.model_name, "1").description
    assert "Variance across seeds" in card and "their ensemble" in card


def test_seeds_without_ensemble_register_member_one(prepared_breastmnist: Path, settings, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from components.data.dataset import load_prepared
    from components.training.final import train_best

    torch.set_num_threads(1)
    cfg = smoke_cfg(*SEEDS)
    trained = train_best(cfg.for_training(), load_prepared(prepared_breastmnist), settings, out_dir=tmp_path / "model")
    assert not trained.is_ensemble and len(trained.members) == 2
    assert trained.run_id == trained.members[0].run_id != trained.seeds_run_id
    _, report, registered = _register(trained, cfg, prepared_breastmnist, settings, tmp_path)

    configs = [read_model_dir(p.parent)[0] for p in registered.rglob("model.ckpt")]
    assert configs and all("ensemble" not in c and c["name"] == "cnn" for c in configs)
    weights = read_model_dir(trained.model_dir)[1]
    first = read_model_dir(trained.members[0].model_dir)[1]
    assert all(torch.equal(weights[k], first[k]) for k in first)  # the registered model is member 1 (seed 42)
    seeds = MlflowClient(settings.tracking_uri).get_run(trained.seeds_run_id).data.metrics
    assert seeds["seeds_member1_seed"] == 42 and seeds["seeds_member2_seed"] == 43
    assert seeds["seeds_auc_sd"] == pytest.approx(np.std([r.metrics["auc"] for r in report.members], ddof=1))
