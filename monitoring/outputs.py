"""Writing a check's results (separate from computing them): the HTML report and JSON in the reports
folder, a tagged run in the local Evidently workspace (``medpipe ui evidently``), and an MLflow run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.reference import ReferenceProfile
from monitoring.report import write_report
from monitoring.summary import DriftSummary

log = logging.getLogger(__name__)


def write_report_files(
    summary: DriftSummary,
    reports_dir: Path,
    reference: ReferenceProfile,
    window: pd.DataFrame,
    images: np.ndarray | None = None,
    stem: str | None = None,
) -> dict[str, str]:
    """``drift-<time>.html`` (:mod:`monitoring.report`) and ``drift-<time>.json`` (the summary)."""
    reports_dir = Path(reports_dir)
    stem = stem or "drift-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    html = write_report(reports_dir / f"{stem}.html", summary, reference, window, images)
    json_path = reports_dir / f"{stem}.json"
    summary.report_paths.update(html=str(html), json=str(json_path))
    json_path.write_text(summary.to_json() + "\n")
    return {"html": str(html), "json": str(json_path)}


def log_to_mlflow(summary: DriftSummary, settings, experiment: str) -> str:
    """A run in ``experiment`` with every signal (p-value, statistic) as a metric and the report files as
    artifacts; returns its id."""
    import mlflow

    from components.tracking import setup_mlflow

    setup_mlflow(settings, experiment)
    tags = {"medpipe.kind": "monitoring", "medpipe.status": summary.status, "medpipe.source": summary.source or ""}
    if summary.model_version:
        tags["medpipe.champion_version"] = str(summary.model_version)
    with mlflow.start_run(run_name=f"drift-check-{summary.status}", tags=tags) as run:
        metrics = {"drift_detected": float(summary.drift_detected), "window_size": float(summary.window_size)}
        for s in summary.signals:
            metrics[f"{s.name}.{'p_value' if s.kind == 'test' else 'value'}"] = s.score
            if s.kind == "test" and s.value is not None:
                metrics[f"{s.name}.statistic"] = s.value
            metrics[f"{s.name}.drifted"] = float(s.drifted)
        if summary.estimated_accuracy is not None:
            metrics["estimated_accuracy"] = summary.estimated_accuracy
        if summary.accuracy is not None:
            metrics["accuracy"] = summary.accuracy
        mlflow.log_metrics(metrics)
        mlflow.log_params({f"threshold.{s.name}": s.threshold for s in summary.signals})
        for key in ("html", "json"):
            if key in summary.report_paths and Path(summary.report_paths[key]).is_file():
                mlflow.log_artifact(summary.report_paths[key], artifact_path="drift")
        return run.info.run_id


def record_history(
    summary: DriftSummary, settings, project_name: str, experiment: str, alerted: bool = False
) -> dict[str, str]:
    """The Evidently workspace run and the MLflow run. Best effort: a failure is logged and recorded in
    ``report_paths`` (``*_error``), never loses the HTML/JSON already written."""
    from monitoring.workspace import add_to_workspace

    paths = summary.report_paths
    try:
        project_id, run_id = add_to_workspace(summary, settings.evidently_workspace, project_name, alerted)
        paths.update(evidently_workspace=str(settings.evidently_workspace), evidently_project=project_id)
        paths["evidently_run"] = run_id
    except Exception as err:  # noqa: BLE001
        log.warning("could not add the drift run to the Evidently workspace: %s", err)
        paths["evidently_error"] = str(err)
    try:
        paths["mlflow_run_id"] = log_to_mlflow(summary, settings, experiment)
    except Exception as err:  # noqa: BLE001
        log.warning("could not log the drift check to MLflow: %s", err)
        paths["mlflow_error"] = str(err)
    if "json" in paths:
        Path(paths["json"]).write_text(summary.to_json() + "\n")  # now with every path
    return paths
