"""Writing a check's results (separate from computing them): HTML + JSON in the reports folder, a run
in the local Evidently workspace (``evidently ui --workspace``), and an MLflow monitoring run."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from monitoring.summary import DriftSummary

log = logging.getLogger(__name__)


def write_report_files(summary: DriftSummary, reports_dir: Path, stem: str | None = None) -> dict[str, str]:
    """``drift-<time>.html`` (the Evidently report, when a verdict was reached) and ``drift-<time>.json``."""
    reports_dir = Path(reports_dir)
    reports_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or "drift-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    paths: dict[str, str] = {}
    if summary.snapshot is not None:
        html = reports_dir / f"{stem}.html"
        summary.snapshot.save_html(str(html))
        paths["html"] = str(html)
    json_path = reports_dir / f"{stem}.json"
    paths["json"] = str(json_path)
    summary.report_paths.update(paths)
    json_path.write_text(summary.to_json() + "\n")
    return paths


def add_to_workspace(summary: DriftSummary, workspace_dir: Path, project_name: str) -> str | None:
    """Add the check as a run of the Evidently project ``project_name`` (created on first use); returns its id."""
    if summary.snapshot is None:
        return None
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(workspace_dir))
    found = workspace.search_project(project_name)
    project = found[0] if found else workspace.create_project(project_name, description="medpipe drift checks")
    name = f"drift {summary.model_version or ''} {datetime.now(UTC).isoformat(timespec='seconds')}".strip()
    workspace.add_run(project.id, summary.snapshot, include_data=False, name=name)
    summary.report_paths["evidently_workspace"] = str(workspace_dir)
    summary.report_paths["evidently_project"] = str(project.id)
    return str(project.id)


def log_to_mlflow(summary: DriftSummary, settings, experiment: str, champion_version: str | None = None) -> str:
    """A run in ``experiment`` with every signal as a metric and the report files as artifacts; returns its id."""
    import mlflow

    from components.tracking import setup_mlflow

    setup_mlflow(settings, experiment)
    tags = {"medpipe.kind": "monitoring", "medpipe.status": summary.status}
    if champion_version or summary.model_version:
        tags["medpipe.champion_version"] = str(champion_version or summary.model_version)
    with mlflow.start_run(run_name=f"drift-check-{summary.status}", tags=tags) as run:
        metrics = {"drift_detected": float(summary.drift_detected), "window_size": float(summary.window_size)}
        for s in summary.signals:
            metrics[f"{s.name}.score"] = s.score
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
        summary.report_paths["mlflow_run_id"] = run.info.run_id
        return run.info.run_id


def write_outputs(
    summary: DriftSummary,
    settings,
    project_name: str,
    experiment: str,
    champion_version: str | None = None,
    workspace: bool = True,
    mlflow_run: bool = True,
) -> dict[str, str]:
    """Every output of a check. The workspace and MLflow steps are best effort: a failure there is logged
    and recorded in ``report_paths`` (``*_error``), never loses the HTML/JSON already written."""
    write_report_files(summary, settings.reports)
    if workspace:
        try:
            add_to_workspace(summary, settings.evidently_workspace, project_name)
        except Exception as err:  # noqa: BLE001
            log.warning("could not add the drift run to the Evidently workspace: %s", err)
            summary.report_paths["evidently_error"] = str(err)
    if mlflow_run:
        try:
            log_to_mlflow(summary, settings, experiment, champion_version)
        except Exception as err:  # noqa: BLE001
            log.warning("could not log the drift check to MLflow: %s", err)
            summary.report_paths["mlflow_error"] = str(err)
    Path(summary.report_paths["json"]).write_text(summary.to_json() + "\n")  # now with every path
    return summary.report_paths
