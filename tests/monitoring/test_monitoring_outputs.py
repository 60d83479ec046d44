"""Writing a check: HTML + JSON in the reports folder, a run in the Evidently workspace, an MLflow run."""

from __future__ import annotations

import json

import numpy as np

from monitoring.drift import compute_drift
from monitoring.outputs import write_outputs
from monitoring.window import window_from_images


def test_write_outputs(medpipe_home, monkeypatch, reference, embed_fn, test_images, mon_cfg, empty_mlflow_db) -> None:
    import mlflow
    from evidently.ui.workspace import Workspace

    from medpipe.settings import get_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_mlflow_db(medpipe_home.parent))
    monkeypatch.setenv("MEDPIPE_WEBHOOK_URL", "https://hooks.example.org/very-secret-token")
    get_settings.cache_clear()
    settings = get_settings()
    shifted = np.clip(test_images[:80].astype(np.float32) * 1.3, 0, 255).astype(np.uint8)
    summary = compute_drift(reference, window_from_images(shifted, embed_fn, reference), mon_cfg, model_version="4")
    paths = write_outputs(summary, settings, "breastmnist", "breastmnist-monitoring", champion_version="4")
    assert "mlflow_error" not in paths and "evidently_error" not in paths, paths
    html = settings.reports / paths["html"].rsplit("/", 1)[-1]
    assert html.is_file() and html.stat().st_size > 10_000
    data = json.loads((settings.reports / paths["json"].rsplit("/", 1)[-1]).read_text())
    assert data["drift_detected"] is True and data["report_paths"]["mlflow_run_id"] == paths["mlflow_run_id"]
    assert {s["name"] for s in data["signals"]} >= {"image_features", "embedding", "confidence"}
    # Evidently workspace: one project, one run (what `evidently ui --workspace` shows)
    ws = Workspace(str(settings.evidently_workspace))
    (project,) = ws.search_project("breastmnist")
    assert len(ws.list_runs(project.id)) == 1
    # MLflow: a monitoring run tagged with the champion version, report artifacts attached
    run = mlflow.get_run(paths["mlflow_run_id"])
    assert run.data.tags["medpipe.champion_version"] == "4"
    assert run.data.metrics["drift_detected"] == 1.0 and "embedding.score" in run.data.metrics
    client = mlflow.MlflowClient()
    assert {a.path for a in client.list_artifacts(run.info.run_id, "drift")} == {
        f"drift/{html.name}",
        f"drift/{html.name[:-5]}.json",
    }
    # secrets never reach the reports
    for path in (html, settings.reports / f"{html.name[:-5]}.json"):
        assert "very-secret-token" not in path.read_text()
