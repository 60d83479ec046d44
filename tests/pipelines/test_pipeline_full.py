"""The whole pipeline on BreastMNIST under real Prefect; a failing stage fails loudly and keeps the champion."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.flows import (
    OVERRIDES,
    PROFILE,
    FullRun,
    Project,
    champion_version,
    child_flow_runs,
    markdown_artifact,
    prefect_client,
    task_run_named,
)

pytestmark = pytest.mark.slow


def test_full_pipeline_completes_and_publishes_its_artifacts(full_run: FullRun, project: Project) -> None:
    from pipelines.leases import GPU_LIMIT

    s = full_run.summary
    t = s.training
    assert t.promoted and t.champion == t.version, t.gate_reason
    assert s.deployment is not None and s.deployment.version == t.champion
    assert s.monitoring is not None and s.monitoring.champion_version == t.champion
    assert s.monitoring.status in ("ok", "drift") and s.monitoring.window_size == 156  # the test split
    assert t.data_version and len(t.best_params) > 0
    assert t.test_metrics["auc"] >= 0.75  # promoted: at least the gate's registry.min_primary (params.yaml)
    for path in (t.model_card, t.onnx_path, s.deployment.onnx_path, s.monitoring.report_html):
        assert Path(path).is_file(), path
    assert champion_version(t.model_name) == t.champion
    # one pipeline: the run wrote the train stage's DVC metrics; -S overrides keep it out of dvc.lock, said why
    assert (project.root / "data" / "metrics" / "model.json").is_file()
    assert not t.dvc_note.startswith("recorded") and "train.epochs=2" in t.dvc_note

    with prefect_client() as client:
        root = client.read_flow_run(full_run.flow_run_id)
        assert root.state.is_completed()
        runs = child_flow_runs(client, full_run.flow_run_id)
        assert set(runs) == {"data", "training", "deployment", "monitoring"}
        # readable run names and filterable tags, not Prefect's random "quick-rabbit"
        assert root.name.startswith("breastmnist-pipeline-smoke-")
        assert runs["training"].name.startswith("breastmnist-training-smoke-")
        assert {"dataset:breastmnist", "profile:smoke", "reason:pipeline"} <= set(runs["training"].tags)
        assert all(r.state.is_completed() for r in runs.values())

        data_md = markdown_artifact(client, "data-summary", runs["data"].id)
        training_md = markdown_artifact(client, "training-summary", runs["training"].id)
        deploy_md = markdown_artifact(client, "deployment-summary", runs["deployment"].id)
        drift_md = markdown_artifact(client, "drift-summary", runs["monitoring"].id)
        assert t.data_version in data_md
        assert f"v{t.version} — PROMOTED" in training_md and t.run_id in training_md and "auc" in training_md
        assert f"v{t.champion}" in deploy_md and s.deployment.onnx_path in deploy_md
        assert f"Drift check: {s.monitoring.status.upper()}" in drift_md and "| signal |" in drift_md

        # GPU work ran under the global `gpu` concurrency limit (created on first use, 1 slot, now free).
        limit = client.read_global_concurrency_limit_by_name(GPU_LIMIT)
        assert limit.limit == 1 and limit.active_slots == 0
        # The tasks are named after what they do.
        for name in ("search-and-train", "onnx-export-and-parity", "operating-point-on-validation",
                     "evaluate-served-graph", "register-challenger", "promotion-gate"):  # fmt: skip
            assert task_run_named(client, runs["training"].id, name).state.is_completed()


def test_headline_figures_agree_on_every_surface(full_run: FullRun, project: Project) -> None:
    """One evaluation of the served graph: the same AUC/sensitivity in the summary, the Prefect artifact, the
    MLflow run, the version tags, the gate decision, the model card and ``dvc metrics show``'s file."""
    import json

    from mlflow import MlflowClient

    from medpipe.settings import get_settings

    t = full_run.summary.training
    auc, sens = t.test_metrics["auc"], t.test_metrics["sensitivity"]
    client = MlflowClient(get_settings().tracking_uri)
    run = client.get_run(t.run_id).data
    assert run.metrics["test_auc"] == auc and run.metrics["test_sensitivity"] == sens
    assert run.tags["medpipe.operating_point"] == t.operating_point
    tags = client.get_model_version(t.model_name, t.version).tags
    assert float(tags["test.auc"]) == pytest.approx(auc, abs=5e-6) and tags["gate.challenger.auc"] == f"{auc:.4f}"
    card = Path(t.model_card).read_text()
    assert f"| ROC AUC | {auc:.4f} |" in card and f"| sensitivity (recall of malignant) | {sens:.4f} |" in card
    assert f"| auc | {auc:.4f} |" in t.gate_markdown or f"| challenger | {auc:.4f} |" in t.gate_markdown
    dvc_metrics = json.loads((project.root / "data" / "metrics" / "model.json").read_text())["test"]
    assert dvc_metrics["auc"] == auc and dvc_metrics["sensitivity"] == sens
    with prefect_client() as prefect:
        training = child_flow_runs(prefect, full_run.flow_run_id)["training"]
        assert f"| auc | {auc:.4f} |" in markdown_artifact(prefect, "training-summary", training.id)


def test_a_failing_stage_fails_the_flow_names_the_stage_and_keeps_the_champion(
    full_run: FullRun, project: Project
) -> None:
    from pipelines.full import pipeline

    model = full_run.summary.training.model_name
    before = champion_version(model)
    manifest = (project.root / "data" / "prepared" / "manifest.json").read_text()

    missing = project.root / "no-such-scans.npz"
    state = pipeline(project.params, PROFILE, [*OVERRIDES, f"data.source={missing}"], return_state=True)

    assert state.is_failed()
    assert "stage 'data' failed" in state.message and "no-such-scans.npz" in state.message
    with prefect_client() as client:
        recorded = client.read_flow_run(state.state_details.flow_run_id).state
        assert recorded.is_failed() and "stage 'data' failed" in recorded.message
        assert set(child_flow_runs(client, state.state_details.flow_run_id)) == {"data"}  # nothing ran after it
    assert champion_version(model) == before
    assert (project.root / "data" / "prepared" / "manifest.json").read_text() == manifest  # data cache intact


def test_a_failing_parity_gate_leaves_the_previous_champion(full_run: FullRun, project: Project) -> None:
    """A new version whose ONNX export cannot pass parity is never made champion by the deployment flow."""
    from components.registry.register import register_model
    from medpipe.config import load_config
    from medpipe.settings import get_settings
    from pipelines.deployment import deployment_flow

    t = full_run.summary.training
    cfg = load_config(project.params, overrides=OVERRIDES, profile=PROFILE)
    candidate = register_model(
        Path(t.model_dir),
        Path(t.onnx_path),
        get_settings(),
        registry=cfg.registry,
        lineage=cfg.lineage(),
        run_id=None,
        data_version=None,
        metrics={},
    )
    assert candidate.version != t.champion

    state = deployment_flow(
        t.prepared_path,
        candidate.version,
        project.params,
        PROFILE,
        [*OVERRIDES, "export.parity_atol=1e-30"],
        return_state=True,
    )

    assert state.is_failed()
    assert "stage 'parity-gate' failed" in state.message and f"v{candidate.version}" in state.message
    assert champion_version(t.model_name) == t.champion


def test_dvc_exp_run_registers_and_gates_like_medpipe_run(full_run: FullRun, project: Project) -> None:
    """One pipeline, two front doors: `dvc exp run -S <the overrides>` runs the same training flow as the
    full run's `medpipe run -S <the overrides>`, so it registers a version with the same params and data
    lineage and a gate decision of its own (last in this module: it adds a version)."""
    import os
    import shutil
    import subprocess
    import sys

    from mlflow import MlflowClient

    from medpipe.settings import get_settings
    from tests.helpers.project import git

    t = full_run.summary.training
    root = project.root
    repo_root = Path(__file__).resolve().parents[2]
    for name in ("components", "monitoring", "pipelines", "medpipe"):  # the train stage's code dependencies
        shutil.copytree(repo_root / name, root / name, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the project as the full run left it")  # `dvc exp run` needs a commit

    client = MlflowClient(get_settings().tracking_uri)
    before = {v.version for v in client.search_model_versions(f"name='{t.model_name}'")}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    sets = [arg for o in OVERRIDES for arg in ("-S", o)]
    dvc = [str(Path(sys.executable).with_name("dvc")), "exp", "run", "--single-item", "train", *sets]
    out = subprocess.run(dvc, cwd=root, env=env, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    champion = champion_version(t.model_name)
    try:
        (new,) = {v.version for v in client.search_model_versions(f"name='{t.model_name}'")} - before
        via_dvc = client.get_model_version(t.model_name, new).tags
        via_run = client.get_model_version(t.model_name, t.version).tags
        for key in ("medpipe.params_hash", "medpipe.data_version", "medpipe.dataset"):
            assert via_dvc[key] == via_run[key], key  # same effective params, same DVC data version
        assert via_dvc["gate.decision"] and via_run["gate.decision"]  # both went through the promotion gate
        assert client.get_run(client.get_model_version(t.model_name, new).run_id).data.tags.get(
            "medpipe.prefect_flow_run_id"
        )  # a training flow run, not a second training path
    finally:  # the later modules expect the full run's champion
        if champion != t.champion:
            client.set_registered_model_alias(t.model_name, "champion", t.champion)
