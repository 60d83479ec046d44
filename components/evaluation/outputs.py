"""Where an :class:`EvaluationResult` is written: DVC metrics/plots files and the model's MLflow run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from components.evaluation.evaluate import EvaluationResult
from components.training import mlflow_log as ml
from components.training import plots

RESULT_FILE = "evaluation.json"


def _write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return path


def result_record(result: EvaluationResult) -> dict[str, Any]:
    """The result as JSON-able data: figures, CIs, operating point, test set, confusion, calibration rows."""
    return {
        "test_set": result.test_set,
        "metrics": result.flat(),
        "operating_point": result.operating_point.model_dump(mode="json"),
        "confusion": {"class_names": result.class_names, "matrix": result.confusion().tolist()},
        "reliability": [list(r) for r in result.reliability],
        "bootstrap_resamples": result.n_resamples,
    }


def write_figures(result: EvaluationResult, out_dir: Path) -> list[Path]:
    """ROC (PNG + JSON) and confusion matrix at the operating point (PNG + JSON) into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = plots.roc_curves(result.probs, result.labels, result.class_names)
    cm = result.confusion()
    return [
        plots.roc_png(curves, out_dir / "roc.png", result.metrics.get("auc")),
        _write_json(out_dir / "roc_curves.json", curves),
        plots.confusion_matrix_png(cm, result.class_names, out_dir / "confusion_matrix.png"),
        _write_json(out_dir / RESULT_FILE, result_record(result)),
    ]


def roc_rows(result: EvaluationResult) -> list[dict[str, Any]]:
    """ROC points as DVC plot rows (``class``, ``fpr``, ``tpr``)."""
    curves = plots.roc_curves(result.probs, result.labels, result.class_names)
    return [
        {"class": c, "fpr": f, "tpr": t}
        for c, pts in curves.items()
        for f, t in zip(pts["fpr"], pts["tpr"], strict=True)
    ]


def confusion_rows(result: EvaluationResult) -> list[dict[str, str]]:
    """One ``actual``/``predicted`` row per image at the operating point (DVC's confusion template)."""
    names, pred = result.class_names, result.operating_point.predict(result.probs)
    return [{"actual": names[i], "predicted": names[j]} for i, j in zip(result.labels, pred, strict=True)]


def log_to_run(settings: Any, run_id: str, result: EvaluationResult) -> None:
    """``test_<metric>`` metrics, the operating point tags and the figures (``evaluation/``) on the model's run."""
    client = ml.client_for(settings)
    ml.log_metrics(client, run_id, {f"test_{k}": v for k, v in result.flat().items()})
    op = result.operating_point
    client.set_tag(run_id, "medpipe.operating_point", op.describe())
    client.set_tag(run_id, "medpipe.test_set", result.test_set)
    with tempfile.TemporaryDirectory(prefix="medpipe-eval-") as tmp:
        for path in write_figures(result, Path(tmp)):
            client.log_artifact(run_id, str(path), "evaluation")
