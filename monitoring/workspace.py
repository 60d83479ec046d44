"""The history of drift checks in a local Evidently workspace (``medpipe ui evidently``).

Each check becomes one Evidently run over a one-row dataset of the check's own numbers (the p-value of
every test family, the estimated accuracy, the window size, whether it drifted and alerted), one
``MeanValue`` per number, tagged with the status, model version and source. The project's dashboard gets
line panels of those numbers on first use, so the UI opens on a timeline instead of "add a panel".
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from monitoring.summary import DriftSummary

#: column of the history row -> (panel, legend)
SERIES = {
    "p_embedding_mmd": ("Drift p-values (lower = more drift)", "embedding MMD"),
    "p_softmax": ("Drift p-values (lower = more drift)", "softmax outputs"),
    "p_image_statistics": ("Drift p-values (lower = more drift)", "image statistics"),
    "threshold": ("Drift p-values (lower = more drift)", "per-family threshold (alpha / families)"),
    "estimated_accuracy": ("Estimated accuracy (ATC, label-free)", "estimated accuracy"),
    "reference_accuracy": ("Estimated accuracy (ATC, label-free)", "reference accuracy"),
    "window_size": ("Window size (images)", "window size"),
    "drift": ("Drift and alerts", "drift detected (1/0)"),
    "alerted": ("Drift and alerts", "alert sent (1/0)"),
}


def history_row(summary: DriftSummary, alerted: bool = False) -> dict[str, float]:
    """The numbers of one check, as the dashboard plots them (NaN where the check had no such signal)."""
    row = {col: float("nan") for col in SERIES}
    for s in summary.signals:
        if s.kind == "test":
            row[f"p_{s.name}"] = s.score
            row["threshold"] = s.threshold
    row["estimated_accuracy"] = summary.estimated_accuracy if summary.estimated_accuracy is not None else float("nan")
    ref = summary.reference_accuracy
    row["reference_accuracy"] = ref if ref is not None else float("nan")
    row["window_size"] = float(summary.window_size)
    row["drift"] = float(summary.drift_detected)
    row["alerted"] = float(alerted)
    return row


def _ensure_dashboard(project) -> None:  # noqa: ANN001 - evidently Project
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import line_plot_panel

    if project.dashboard.model().panels:
        return
    panels: dict[str, list] = {}
    for col, (title, legend) in SERIES.items():
        panels.setdefault(title, []).append(
            PanelMetric(legend=legend, metric="MeanValue", metric_labels={"column": col})
        )
    for title, values in panels.items():
        project.dashboard.add_panel(line_plot_panel(title=title, values=values, size="half"), tab="Drift history")


def add_to_workspace(
    summary: DriftSummary, workspace_dir: Path, project_name: str, alerted: bool = False
) -> tuple[str, str]:
    """Add the check as a tagged run of ``project_name`` (created, with its dashboard, on first use).
    Returns (project id, run id)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import MeanValue
    from evidently.ui.workspace import Workspace

    workspace = Workspace(str(workspace_dir))
    found = workspace.search_project(project_name)
    project = found[0] if found else workspace.create_project(project_name, description="medpipe drift checks")
    _ensure_dashboard(project)
    row = {k: v for k, v in history_row(summary, alerted).items() if not math.isnan(v)}  # e.g. no embeddings logged
    data = Dataset.from_pandas(pd.DataFrame([row]), DataDefinition(numerical_columns=list(row)))
    tags = [f"status:{summary.status}", f"model_version:{summary.model_version or 'unknown'}"]
    tags.append(f"source:{(summary.source or 'unknown').split(' ', 1)[0]}")
    metadata = {"source": summary.source or "", "report": summary.report_paths.get("html", "")}
    now = datetime.now(UTC)
    name = f"drift {summary.status} v{summary.model_version or '?'} {now.isoformat(timespec='seconds')}"
    snapshot = Report([MeanValue(column=c) for c in row]).run(
        data, None, timestamp=now, tags=tags, metadata=metadata, name=name
    )
    ref = workspace.add_run(project.id, snapshot, include_data=False, name=name)
    return str(project.id), str(ref.id)
