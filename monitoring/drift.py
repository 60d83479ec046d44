"""The drift check: reference profile vs current window -> :class:`DriftSummary` (Evidently 0.7).

Signals (thresholds from ``params.yaml`` ``monitoring``):

- ``image_features``: share of drifted image features (K-S per feature) >= ``drift_share``;
- ``embedding``: ROC AUC of a classifier telling reference from current PCA embeddings > ``embedding_threshold``;
- ``predicted_class`` / ``confidence``: distribution tests, p-value < ``prediction_threshold``;
- ``estimated_accuracy_drop``: CBPE-style label-free accuracy fell by more than ``accuracy_drop``;
- ``confidence_drop``: mean max-probability fell by more than ``confidence_drop``;
- ``accuracy_drop``: real accuracy (feedback labels) fell by more than ``accuracy_drop``.

Results are read by metric id, never by list position. Writing reports is a separate step
(:mod:`monitoring.outputs`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import numpy as np
import pandas as pd

from medpipe.config import MonitoringConfig
from monitoring.features import FEATURE_COLUMNS
from monitoring.reference import ReferenceProfile, pc_columns
from monitoring.summary import DriftSummary, Signal

EMBEDDING = "embedding"


def _finite(x: Any, default: float) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return default
    return x if math.isfinite(x) else default


def _window_bounds(current: pd.DataFrame) -> tuple[str | None, str | None]:
    if "timestamp" not in current or current.empty:
        return None, None
    ts = pd.to_datetime(current["timestamp"], utc=True, errors="coerce").dropna()
    return (ts.min().isoformat(), ts.max().isoformat()) if len(ts) else (None, None)


def compute_drift(
    reference: ReferenceProfile,
    current: pd.DataFrame,
    cfg: MonitoringConfig,
    model_version: str | None = None,
) -> DriftSummary:
    """Compare ``current`` (rows from :mod:`monitoring.window`) with ``reference``.

    A window smaller than ``cfg.min_window`` gives status ``"not_enough_data"`` and no verdict.
    """
    n = len(current)
    start, end = _window_bounds(current)
    base = {"window_size": n, "reference_size": len(reference.frame), "model_version": model_version}
    base |= {"window_start": start, "window_end": end, "reference_accuracy": reference.reference_accuracy}
    if n < cfg.min_window:
        return DriftSummary(
            drift_detected=False,
            status="not_enough_data",
            signals=[],
            message=f"not enough data: the window holds {n} rows; a verdict needs at least "
            f"monitoring.min_window={cfg.min_window}",
            **base,
        )
    missing = [c for c in (*FEATURE_COLUMNS, "confidence", "predicted_class") if c not in current]
    if missing:
        raise ValueError(f"current window lacks columns {missing}; build it with monitoring.window")
    has_emb = all(c in current for c in pc_columns(reference.n_components)) and current[
        pc_columns(reference.n_components)
    ].notna().all(axis=None)

    snapshot, results, tests = _run_report(reference, current, cfg, has_emb)
    signals = _signals_from_report(results, tests, cfg, has_emb)
    signals += _performance_signals(reference, current, cfg)
    est = reference.expected_accuracy(current["confidence"].to_numpy())
    labelled, accuracy = _real_accuracy(current)
    drifted = [s for s in signals if s.drifted]
    feature_scores = results.get("feature_scores", {})
    return DriftSummary(
        drift_detected=bool(drifted),
        status="drift" if drifted else "ok",
        signals=signals,
        estimated_accuracy=est,
        accuracy=accuracy,
        labelled=labelled,
        message=("drift in " + ", ".join(s.name for s in drifted)) if drifted else "no drift",
        snapshot=snapshot,
        feature_scores=feature_scores,
        **base,
    )


def _run_report(
    reference: ReferenceProfile, current: pd.DataFrame, cfg: MonitoringConfig, has_emb: bool
) -> tuple[Any, dict[str, Any], dict[str, str]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.metrics.data_drift.embedding_drift_methods import model
    from evidently.metrics import DriftedColumnsCount, EmbeddingsDrift, ValueDrift
    from evidently.tests import gte, lt, lte

    features = list(FEATURE_COLUMNS)
    pcs = pc_columns(reference.n_components) if has_emb else []
    columns = [*features, *pcs, "confidence", "predicted_class"]
    ref = reference.frame[columns].copy()
    cur = current[columns].copy()
    for frame in (ref, cur):
        frame["predicted_class"] = frame["predicted_class"].astype(str)
        frame[[*features, *pcs, "confidence"]] = frame[[*features, *pcs, "confidence"]].astype("float64")
    definition = DataDefinition(
        numerical_columns=[*features, *pcs, "confidence"],
        categorical_columns=["predicted_class"],
        embeddings={EMBEDDING: pcs} if pcs else None,
    )
    thr, pthr = cfg.feature_stattest_threshold, cfg.prediction_threshold
    metrics: dict[str, Any] = {
        "features": DriftedColumnsCount(
            columns=features,
            drift_share=cfg.drift_share,
            num_method="ks",
            num_threshold=thr,
            share_tests=[lt(cfg.drift_share)],
        ),
        "predicted_class": ValueDrift(column="predicted_class", threshold=pthr, tests=[gte(pthr)]),
        "confidence": ValueDrift(column="confidence", method="ks", threshold=pthr, tests=[gte(pthr)]),
    }
    for col in features:
        metrics[f"feature:{col}"] = ValueDrift(column=col, method="ks", threshold=thr)
    if pcs:
        metrics[EMBEDDING] = EmbeddingsDrift(
            embeddings_name=EMBEDDING,
            drift_method=model(threshold=cfg.embedding_threshold),
            tests=[lte(cfg.embedding_threshold)],
        )
    report = Report(list(metrics.values()))
    with _fast_embedding_plot():
        snapshot = report.run(Dataset.from_pandas(cur, definition), Dataset.from_pandas(ref, definition))
    data = json.loads(snapshot.json())
    by_id = {m["id"]: m.get("value") for m in data.get("metrics", [])}
    status_by_id: dict[str, list[str]] = {}
    for test in data.get("tests", []):
        status_by_id.setdefault(test["metric_config"]["metric_id"], []).append(test["status"])
    values = {key: by_id.get(metric.metric_id) for key, metric in metrics.items()}
    tests = {key: ",".join(status_by_id.get(metric.metric_id, [])) for key, metric in metrics.items()}
    values["feature_scores"] = {c: _finite(values.pop(f"feature:{c}"), 1.0) for c in features}
    return snapshot, values, tests


class _LeadingComponents:
    """Stand-in for t-SNE in EmbeddingsDrift's plot: our embedding columns are already PCA components, so
    the first two are the 2-D view. (Evidently 0.7 runs a full t-SNE on up to 5000 rows on every check,
    ~30 s on 2 cores, only to draw the plot; the drift score does not use it.)"""

    def __init__(self, n_components: int = 2, **_: Any) -> None:
        self.n_components = n_components

    def fit_transform(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)[:, : self.n_components]


@contextmanager
def _fast_embedding_plot() -> Iterator[None]:
    from evidently.legacy.metrics.data_drift import embeddings_drift

    with patch.object(embeddings_drift, "TSNE", _LeadingComponents):
        yield


def _failed(status: str) -> bool:
    return "FAIL" in status


def _signals_from_report(
    values: dict[str, Any], tests: dict[str, str], cfg: MonitoringConfig, has_emb: bool
) -> list[Signal]:
    share = _finite((values.get("features") or {}).get("share"), 0.0)
    drifted_cols = [c for c, p in values["feature_scores"].items() if p < cfg.feature_stattest_threshold]
    signals = [
        Signal(
            "image_features",
            share,
            cfg.drift_share,
            _failed(tests["features"]),
            ">=",
            ("drifted: " + ", ".join(drifted_cols)) if drifted_cols else "",
        )
    ]
    if has_emb:
        auc = _finite(values.get(EMBEDDING), 0.5)
        signals.append(Signal(EMBEDDING, auc, cfg.embedding_threshold, _failed(tests[EMBEDDING]), ">", "ROC AUC"))
    for key in ("predicted_class", "confidence"):
        p = _finite(values.get(key), 1.0)
        signals.append(Signal(key, p, cfg.prediction_threshold, _failed(tests[key]), "<", "p-value"))
    return signals


def _performance_signals(reference: ReferenceProfile, current: pd.DataFrame, cfg: MonitoringConfig) -> list[Signal]:
    ref = reference.frame
    held_out = ref[ref["split"] != "train"] if "split" in ref and (ref["split"] != "train").sum() >= 20 else ref
    ref_conf = held_out["confidence"].to_numpy()
    cur_conf = current["confidence"].to_numpy(dtype=np.float64)
    ref_est = reference.expected_accuracy(ref_conf) or 0.0
    cur_est = reference.expected_accuracy(cur_conf) or 0.0
    est_drop = ref_est - cur_est
    conf_drop = float(ref_conf.mean() - cur_conf.mean())
    signals = [
        Signal(
            "estimated_accuracy_drop",
            est_drop,
            cfg.accuracy_drop,
            est_drop > cfg.accuracy_drop,
            ">",
            f"{cur_est:.3f} vs {ref_est:.3f}",
        ),
        Signal("confidence_drop", conf_drop, cfg.confidence_drop, conf_drop > cfg.confidence_drop, ">"),
    ]
    labelled, acc = _real_accuracy(current)
    if acc is not None and reference.reference_accuracy is not None and labelled >= max(5, cfg.min_window // 2):
        drop = reference.reference_accuracy - acc
        signals.append(
            Signal(
                "accuracy_drop",
                drop,
                cfg.accuracy_drop,
                drop > cfg.accuracy_drop,
                ">",
                f"{acc:.3f} on {labelled} labelled",
            )
        )
    return signals


def _real_accuracy(current: pd.DataFrame) -> tuple[int, float | None]:
    if "label" not in current:
        return 0, None
    rows = current[current["label"].notna() & (current["label"].astype(str) != "")]
    if rows.empty:
        return 0, None
    correct = rows["label"].astype(str).to_numpy() == rows["predicted_class"].astype(str).to_numpy()
    return len(rows), float(correct.mean())
