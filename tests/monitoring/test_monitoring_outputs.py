"""Writing a check: the HTML report (verdict first, thumbnails), JSON, a tagged Evidently run on a dashboard
with panels, an MLflow run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from monitoring.drift import compute_drift
from monitoring.outputs import record_history, write_report_files
from monitoring.window import window_from_images


def test_report_and_history(
    medpipe_home, monkeypatch, reference, embed_fn, test_images, mon_cfg, empty_mlflow_db
) -> None:
    import mlflow
    from evidently.ui.workspace import Workspace

    from medpipe.settings import get_settings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_mlflow_db(medpipe_home.parent))
    get_settings.cache_clear()
    settings = get_settings()
    shifted = np.clip(test_images[:80].astype(np.float32) * 1.3, 0, 255).astype(np.uint8)
    window = window_from_images(shifted, embed_fn, reference)
    summary = compute_drift(reference, window, mon_cfg, model_version="4", source="folder /incoming")
    paths = write_report_files(summary, settings.reports, reference, window, shifted)

    # the report, read back: verdict first, then every signal with value / p-value / threshold, then images
    page = Path(paths["html"]).read_text(encoding="utf-8")
    assert page.index("id='verdict'") < page.index("id='signals'") < page.index("id='thumbnails'")
    assert "DRIFT DETECTED" in page and "folder /incoming" in page and ">4<" in page
    table = page[page.index("id='signals'") : page.index("</table>", page.index("id='signals'"))]
    for s in summary.signals:
        assert f"<td>{s.name}</td>" in table
    assert "p &lt; 0.0167" in table  # alpha 0.05 over three test families
    thumbs = re.findall(r"<img alt='(reference|current) thumbnails' src='data:image/png;base64,", page)
    assert thumbs == ["reference", "current"]
    assert "Pixel-intensity histograms" in page and "Model embeddings" in page
    for constant in ("original_height", "original_width", "channels"):  # constant columns: no table row, no plot
        assert f"<td>{constant}</td>" not in page

    paths = record_history(summary, settings, "breastmnist", "breastmnist-monitoring", alerted=True)
    assert "mlflow_error" not in paths and "evidently_error" not in paths, paths
    data = json.loads(Path(paths["json"]).read_text())
    assert data["drift_detected"] is True and data["report_paths"]["mlflow_run_id"] == paths["mlflow_run_id"]
    # Evidently workspace: a dashboard with panels, one tagged run carrying the check's numbers
    ws = Workspace(str(settings.evidently_workspace))
    (project,) = ws.search_project("breastmnist")
    panels = {p.title for p in project.dashboard.model().panels}
    assert {"Drift p-values (lower = more drift)", "Estimated accuracy (ATC, label-free)"} <= panels
    assert {"Window size (images)", "Drift and alerts"} <= panels
    (run_id,) = ws.list_runs(project.id)
    run = ws.get_run(project.id, run_id)
    assert {"status:drift", "model_version:4", "source:folder"} <= set(run.tags)
    values = {r.metric_value_location.metric.params["column"]: r.value for r in run.metric_results.values()}
    assert values["alerted"] == 1.0 and values["window_size"] == 80.0
    assert values["p_image_statistics"] == next(s.score for s in summary.signals if s.name == "image_statistics")
    # a second check reuses the dashboard, adds a run
    record_history(summary, settings, "breastmnist", "breastmnist-monitoring")
    (project,) = Workspace(str(settings.evidently_workspace)).search_project("breastmnist")
    assert len(project.dashboard.model().panels) == len(panels) and len(ws.list_runs(project.id)) == 2
    # MLflow: a monitoring run tagged with the champion version, p-values as metrics, report artifacts attached
    run = mlflow.get_run(paths["mlflow_run_id"])
    assert run.data.tags["medpipe.champion_version"] == "4"
    assert run.data.metrics["drift_detected"] == 1.0 and "embedding_mmd.p_value" in run.data.metrics
    client = mlflow.MlflowClient()
    html = paths["html"].rsplit("/", 1)[-1]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "drift")} == {
        f"drift/{html}",
        f"drift/{html[:-5]}.json",
    }
    for path in (paths["html"], paths["json"]):  # secrets never reach the reports
        assert "very-secret-token" not in Path(path).read_text()
