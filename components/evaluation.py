"""Classification metrics from predicted probabilities (numpy + scikit-learn only).

Every stage that scores a model (training, the promotion gate, export checks, monitoring) calls
:func:`classification_metrics` so the numbers mean the same everywhere. ``probs`` is (N, K) with rows
summing to 1, ``labels`` is (N,) int in ``0..K-1``. Metrics that are undefined on the given labels
(e.g. AUC when only one class is present) are ``nan``, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
from sklearn import metrics as skm

ECE_BINS = 15
PRIMARY_METRICS = ("auc", "accuracy", "balanced_accuracy", "f1")
Scorer = Callable[[np.ndarray, np.ndarray], float]


def _check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise ValueError(f"probs must be (N, K) and labels (N,); got {probs.shape} and {labels.shape}")
    if probs.shape[1] < 2:
        raise ValueError(f"probs needs at least 2 class columns, got {probs.shape[1]}")
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise ValueError(f"labels must lie in 0..{probs.shape[1] - 1}, got {labels.min()}..{labels.max()}")
    return probs, labels


def auc(probs: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC: binary on column 1; macro one-vs-rest for K > 2 (over classes present). ``nan`` if undefined."""
    probs, labels = _check(probs, labels)
    present = np.unique(labels)
    if present.size < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(skm.roc_auc_score(labels, probs[:, 1]))
    per_class = [skm.roc_auc_score(labels == k, probs[:, k]) for k in present]
    return float(np.mean(per_class))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE: mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    probs, labels = _check(probs, labels)
    if labels.size == 0:
        return float("nan")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    idx = np.clip(np.digitize(conf, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    gap = np.abs(np.bincount(idx, correct, bins) - np.bincount(idx, conf, bins))
    return float(gap.sum() / counts.sum())


def reliability_table(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[tuple[float, float, float, int]]:
    """Calibration curve rows ``(bin_low, mean_confidence, accuracy, count)`` for non-empty top-label bins."""
    probs, labels = _check(probs, labels)
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = idx == b
        if sel.any():
            rows.append((float(edges[b]), float(conf[sel].mean()), float(correct[sel].mean()), int(sel.sum())))
    return rows


def sensitivity_at_specificity(probs: np.ndarray, labels: np.ndarray, positive: int, specificity: float) -> float:
    """Best sensitivity (recall of ``positive``) over thresholds whose specificity is >= ``specificity``."""
    probs, labels = _check(probs, labels)
    y = labels == positive
    if y.all() or not y.any():
        return float("nan")
    fpr, tpr, _ = skm.roc_curve(y, probs[:, positive])
    ok = fpr <= (1.0 - specificity) + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def class_key(name: str) -> str:
    """A class name as used in metric keys (``recall.<class_key>``)."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", str(name)).strip("_") or "class"


def classification_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    positive: int,
    specificity: float,
) -> dict[str, float]:
    """All scalar metrics for one prediction set, as a flat dict (ready for ``mlflow.log_metrics``).

    Keys: ``auc``, ``accuracy``, ``balanced_accuracy``, ``precision``/``recall``/``f1`` (macro), ``ece``,
    ``sensitivity_at_specificity`` (for class ``positive`` at ``specificity``), ``n``, and per class
    ``<metric>.<class>`` for precision, recall, f1, auc (one-vs-rest) and support.
    """
    probs, labels = _check(probs, labels)
    k = probs.shape[1]
    if len(class_names) != k:
        raise ValueError(f"{len(class_names)} class names for {k} probability columns")
    if not 0 <= positive < k:
        raise ValueError(f"positive class index {positive} is outside 0..{k - 1}")
    pred = probs.argmax(axis=1)
    every = list(range(k))
    p, r, f, support = skm.precision_recall_fscore_support(labels, pred, labels=every, zero_division=0)
    present = np.unique(labels)
    out: dict[str, float] = {
        "auc": auc(probs, labels),
        "accuracy": float(skm.accuracy_score(labels, pred)) if labels.size else float("nan"),
        "balanced_accuracy": float(np.mean(r[present])) if present.size else float("nan"),
        "precision": float(np.mean(p)),
        "recall": float(np.mean(r)),
        "f1": float(np.mean(f)),
        "ece": expected_calibration_error(probs, labels),
        "sensitivity_at_specificity": sensitivity_at_specificity(probs, labels, positive, specificity),
        "n": float(labels.size),
    }
    for i, name in enumerate(class_names):
        y = labels == i
        key = class_key(name)
        out[f"precision.{key}"] = float(p[i])
        out[f"recall.{key}"] = float(r[i])
        out[f"f1.{key}"] = float(f[i])
        out[f"auc.{key}"] = float(skm.roc_auc_score(y, probs[:, i])) if 0 < y.sum() < y.size else float("nan")
        out[f"support.{key}"] = float(support[i])
    return out


def metric_fn(metric: str, *, positive: int = -1, specificity: float = 0.9) -> Scorer:
    """A fast scorer ``(probs, labels) -> float`` for one metric name of :func:`classification_metrics`."""
    macro = {"precision": 0, "recall": 1, "f1": 2}

    def _positive(probs: np.ndarray) -> int:
        return positive % probs.shape[1]

    if metric == "auc":
        return auc
    if metric == "ece":
        return expected_calibration_error
    if metric == "accuracy":
        return lambda pr, y: float(np.mean(pr.argmax(axis=1) == y))
    if metric == "balanced_accuracy":
        return lambda pr, y: float(skm.balanced_accuracy_score(y, pr.argmax(axis=1)))
    if metric in macro:
        i = macro[metric]
        return lambda pr, y: float(
            np.mean(
                skm.precision_recall_fscore_support(
                    y, pr.argmax(axis=1), labels=list(range(pr.shape[1])), zero_division=0
                )[i]
            )
        )
    if metric == "sensitivity_at_specificity":
        return lambda pr, y: sensitivity_at_specificity(pr, y, _positive(pr), specificity)
    raise ValueError(
        f"unknown metric {metric!r}; use one of auc, accuracy, balanced_accuracy, precision, recall, f1, ece, "
        "sensitivity_at_specificity"
    )


def bootstrap_ci(
    probs: np.ndarray,
    labels: np.ndarray,
    metric: str,
    n: int,
    seed: int,
    *,
    level: float = 0.95,
    positive: int = -1,
    specificity: float = 0.9,
) -> tuple[float, float]:
    """Percentile bootstrap ``level`` interval of ``metric`` over ``n`` resamples of the prediction set.

    Resamples where the metric is undefined (e.g. one class only, for AUC) are dropped; ``(nan, nan)``
    if none is defined. Deterministic for a given ``seed``.
    """
    probs, labels = _check(probs, labels)
    score = metric_fn(metric, positive=positive, specificity=specificity)
    rng = np.random.default_rng(seed)
    size = labels.size
    if size == 0 or n < 1:
        return float("nan"), float("nan")
    values = np.empty(n)
    for i in range(n):
        idx = rng.integers(0, size, size)
        values[i] = score(probs[idx], labels[idx])
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)
