"""The drift check: reference profile vs current window -> :class:`DriftSummary`.

Test families (:mod:`monitoring.detectors`), each with a p-value corrected within the family:

- ``embedding_mmd``: MMD permutation test on the model's whitened PCA embeddings;
- ``softmax``: K-S on class probabilities + chi-squared on predicted classes;
- ``image_statistics``: K-S per image statistic, Holm.

The check's false-alarm rate is ``monitoring.alpha``: each family is tested at ``alpha / families``
(Bonferroni), so the chance that an iid window raises any alarm is at most ``alpha``. The label-free
accuracy estimate (ATC, :mod:`monitoring.estimate`) is reported with its drop as a warning, outside the
verdict; an accuracy drop on feedback labels (when the window has them) is part of it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medpipe.config import MonitoringConfig
from medpipe.imaging.features import FEATURE_COLUMNS
from monitoring.detectors import TestResult, embedding_mmd, image_statistics, softmax_shift
from monitoring.reference import ReferenceProfile, pc_columns, prob_columns
from monitoring.summary import DriftSummary, Signal


def _window_bounds(current: pd.DataFrame) -> tuple[str | None, str | None]:
    if "timestamp" not in current or current.empty:
        return None, None
    ts = pd.to_datetime(current["timestamp"], utc=True, errors="coerce").dropna()
    return (ts.min().isoformat(), ts.max().isoformat()) if len(ts) else (None, None)


def run_tests(
    reference: ReferenceProfile, current: pd.DataFrame, cfg: MonitoringConfig, seed: int = 0
) -> list[TestResult]:
    """The test families this window supports (the embedding test needs embeddings in every row)."""
    ref = reference.frame
    pcs = pc_columns(reference.n_components)
    probs = prob_columns(len(reference.class_names))
    results = []
    if all(c in current for c in pcs) and len(current) and current[pcs].notna().all(axis=None):
        results.append(
            embedding_mmd(ref[pcs].to_numpy(), current[pcs].to_numpy(), cfg.permutations, cfg.mmd_max_rows, seed)
        )
    if all(c in current for c in probs) and current[probs].notna().all(axis=None):
        results.append(
            softmax_shift(ref[probs].to_numpy(), current[probs].to_numpy(), reference.class_names, reference.decide)
        )
    results.append(image_statistics(ref, current, list(FEATURE_COLUMNS)))
    return results


def compute_drift(
    reference: ReferenceProfile,
    current: pd.DataFrame,
    cfg: MonitoringConfig,
    model_version: str | None = None,
    source: str | None = None,
    seed: int = 0,
) -> DriftSummary:
    """Compare ``current`` (rows from :mod:`monitoring.window`) with ``reference``.

    A window smaller than ``cfg.min_window`` gives status ``"not_enough_data"`` and no verdict.
    """
    n = len(current)
    start, end = _window_bounds(current)
    base = {"window_size": n, "reference_size": len(reference.frame), "model_version": model_version}
    base |= {"window_start": start, "window_end": end, "reference_accuracy": reference.reference_accuracy}
    base |= {"alpha": cfg.alpha, "source": source}
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
    tests = run_tests(reference, current, cfg, seed)
    level = cfg.alpha / len(tests)
    signals = [Signal(t.name, t.p_value, level, t.p_value < level, "<", t.detail, t.statistic, "test") for t in tests]
    est = reference.expected_accuracy(current["confidence"].to_numpy(dtype=np.float64))
    signals += _accuracy_signals(reference, current, cfg, est)
    labelled, accuracy = _real_accuracy(current)
    drifted = [s for s in signals if s.drifted and s.kind != "estimate"]
    images = next((t for t in tests if t.name == "image_statistics"), None)
    message = ("drift in " + ", ".join(s.name for s in drifted)) if drifted else "no drift"
    return DriftSummary(
        drift_detected=bool(drifted),
        status="drift" if drifted else "ok",
        signals=signals,
        estimated_accuracy=est,
        accuracy=accuracy,
        labelled=labelled,
        message=message,
        feature_scores=dict(images.parts) if images else {},
        **base,
    )


def _accuracy_signals(
    reference: ReferenceProfile, current: pd.DataFrame, cfg: MonitoringConfig, est: float | None
) -> list[Signal]:
    signals = []
    ref_acc = reference.reference_accuracy
    if est is not None and ref_acc is not None:
        floor = ref_acc - cfg.accuracy_drop
        detail = f"ATC estimate vs reference {ref_acc:.3f} (warns below reference - accuracy_drop)"
        signals.append(Signal("estimated_accuracy", est, floor, est < floor, "<", detail, est, "estimate"))
    labelled, acc = _real_accuracy(current)
    if acc is not None and ref_acc is not None and labelled >= max(5, cfg.min_window // 2):
        floor = ref_acc - cfg.accuracy_drop
        detail = f"{labelled} labelled images vs reference {ref_acc:.3f}"
        signals.append(Signal("accuracy", acc, floor, acc < floor, "<", detail, acc, "labels"))
    return signals


def _real_accuracy(current: pd.DataFrame) -> tuple[int, float | None]:
    if "label" not in current:
        return 0, None
    rows = current[current["label"].notna() & (current["label"].astype(str) != "")]
    if rows.empty:
        return 0, None
    correct = rows["label"].astype(str).to_numpy() == rows["predicted_class"].astype(str).to_numpy()
    return len(rows), float(correct.mean())
