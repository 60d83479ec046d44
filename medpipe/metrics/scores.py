"""Point metrics (AUC, ECE, decision metrics), operating points and the per-epoch collection. Part of
:mod:`medpipe.metrics`, which re-exports the public names."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

ECE_BINS = 15
RELIABILITY_BINS = 10
Rule = Literal["specificity", "sensitivity", "youden"]
# the figures a reader sees first, in order; CI_KEYS get a stratified-bootstrap 95% CI
HEADLINE = ("auc", "sensitivity", "specificity", "ppv", "npv", "accuracy", "balanced_accuracy", "ece", "brier")
CI_KEYS = ("auc", "sensitivity", "specificity", "ppv", "npv", "accuracy", "balanced_accuracy")
# the scalar metrics Lightning logs on validation each epoch (``val_<name>``)
EPOCH_METRICS = ("auc", "accuracy", "balanced_accuracy", "ece")
# the figures a seed ensemble (train.seeds > 1) reports as mean +- sd (:func:`mean_sd`), under flat keys
# ``seeds_<figure>_mean`` / ``_sd`` and ``seeds_member<i>_<figure>`` (evaluation writes them, the model card reads them)
SEED_FIGURES = ("auc", "sensitivity", "specificity")
SEED_PREFIX = "seeds_"


def _skm() -> Any:
    from sklearn import metrics  # lazy: the serving and CLI paths import this module for OperatingPoint only

    return metrics


class MetricsError(ValueError):
    """Predictions, labels or a positive class that do not fit together; the message says which."""


def check(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if probs.ndim != 2 or probs.shape[0] != labels.shape[0]:
        raise MetricsError(f"probs must be (N, K) and labels (N,); got {probs.shape} and {labels.shape}")
    if probs.shape[1] < 2:
        raise MetricsError(f"probs needs at least 2 class columns, got {probs.shape[1]}")
    if labels.size and (labels.min() < 0 or labels.max() >= probs.shape[1]):
        raise MetricsError(f"labels must lie in 0..{probs.shape[1] - 1}, got {labels.min()}..{labels.max()}")
    return probs, labels


def class_key(name: str) -> str:
    """A class name as used in metric keys (``recall.<class_key>``)."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", str(name)).strip("_") or "class"


def positive_index(positive: str | int | None, class_names: Sequence[str]) -> int:
    """``registry.positive_class`` (name, index, or None = the last class) as a class index."""
    k = len(class_names)
    if positive is None:
        return k - 1
    if isinstance(positive, int) or (isinstance(positive, str) and positive.isdigit() and positive not in class_names):
        idx = int(positive)
        if not 0 <= idx < k:
            raise MetricsError(
                f"registry.positive_class={positive} is outside 0..{k - 1} (classes: {list(class_names)})"
            )
        return idx
    if positive not in class_names:
        raise MetricsError(
            f"registry.positive_class={positive!r} is not a class of this model; classes: {list(class_names)}"
        )
    return list(class_names).index(positive)


def rarer_class(class_names: Sequence[str], train_counts: dict[str, int]) -> str:
    """The class with the fewest training images (ties: the later class, the usual "positive" slot): the default
    positive class of binary data."""
    return min(reversed(list(class_names)), key=lambda n: int(train_counts.get(n, 0)))


# --- the operating point ------------------------------------------------------------------------------------------


class OperatingPoint(BaseModel):
    """How the served model turns probabilities into a class: stored with the model (preprocessing record)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule: Literal[Rule, "argmax"]
    target: float | None = None  # the specificity/sensitivity asked for (None for youden/argmax)
    positive_class: str | None = None
    positive_index: int | None = None
    threshold: float | None = None  # decide positive when p(positive) >= threshold; None: argmax
    chosen_on: str = "validation"
    val_sensitivity: float | None = None
    val_specificity: float | None = None
    note: str = ""

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """Class indices (N,) of the served decision."""
        probs = np.asarray(probs)
        if self.threshold is None or self.positive_index is None:
            return probs.argmax(axis=1)
        other = 1 - self.positive_index
        return np.where(probs[:, self.positive_index] >= self.threshold, self.positive_index, other)

    def describe(self) -> str:
        if self.threshold is None:
            return self.note or "argmax over the class probabilities"
        goal = "max Youden J" if self.rule == "youden" else f"{self.rule} >= {self.target:g}"
        return f"p({self.positive_class}) >= {self.threshold:.4f} ({goal} on {self.chosen_on})"


def argmax_point(class_names: Sequence[str], positive: int | None, note: str) -> OperatingPoint:
    name = class_names[positive] if positive is not None else None
    return OperatingPoint(rule="argmax", positive_class=name, positive_index=positive, note=note)


def choose_operating_point(
    probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], positive: int, rule: Rule, target: float
) -> OperatingPoint:
    """The threshold on p(``positive``) that meets ``rule`` on these (validation) predictions.

    ``specificity``: the most sensitive threshold whose specificity >= target; ``sensitivity``: the most specific
    threshold whose sensitivity >= target; ``youden``: max sensitivity + specificity - 1. Multi-class models (and
    a validation split without both outcomes) fall back to argmax, and the note says so.
    """
    probs, labels = check(probs, labels)
    if probs.shape[1] != 2:
        note = f"multi-class model ({probs.shape[1]} classes): decisions by argmax, no threshold"
        return argmax_point(class_names, positive, note)
    y = labels == positive
    if y.all() or not y.any():
        return argmax_point(class_names, positive, "validation split lacks one outcome: decisions by argmax")
    fpr, tpr, thresholds = _skm().roc_curve(y, probs[:, positive], drop_intermediate=False)
    if rule == "specificity":
        i = int(np.flatnonzero(fpr <= 1.0 - target + 1e-12).max())  # tpr grows with i: the last admissible one
    elif rule == "sensitivity":
        i = int(np.flatnonzero(tpr >= target - 1e-12).min())  # fpr grows with i: the first admissible one
    else:
        i = int(np.argmax(tpr - fpr))
    threshold = float(min(thresholds[i], 1.0))  # roc_curve's first threshold is +inf: "call nothing positive"
    return OperatingPoint(
        rule=rule,
        target=None if rule == "youden" else float(target),
        positive_class=str(class_names[positive]),
        positive_index=positive,
        threshold=threshold,
        val_sensitivity=float(tpr[i]),
        val_specificity=float(1.0 - fpr[i]),
    )


# --- point metrics --------------------------------------------------------------------------------------------------


def auc(probs: np.ndarray, labels: np.ndarray, positive: int | None = None) -> float:
    """ROC AUC: binary on ``positive`` (default the last column); macro one-vs-rest for K > 2 over the classes
    present. ``nan`` when undefined."""
    probs, labels = check(probs, labels)
    present = np.unique(labels)
    if present.size < 2:
        return float("nan")
    if probs.shape[1] == 2:
        pos = probs.shape[1] - 1 if positive is None else positive
        return float(_skm().roc_auc_score(labels == pos, probs[:, pos]))
    return float(np.mean([_skm().roc_auc_score(labels == k, probs[:, k]) for k in present]))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE (equal-width confidence bins, L1), torchmetrics' definition."""
    import torch
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs, labels = check(probs, labels)
    if labels.size == 0:
        return float("nan")
    value = multiclass_calibration_error(
        torch.from_numpy(probs), torch.from_numpy(labels), probs.shape[1], n_bins=bins, norm="l1"
    )
    return float(value)


def _safe_div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def decision_metrics(pred: np.ndarray, labels: np.ndarray, positive: int | None) -> dict[str, float]:
    """Sensitivity, specificity, PPV, NPV of ``positive`` (nan without one) for decided classes ``pred``."""
    if positive is None:
        return {k: float("nan") for k in ("sensitivity", "specificity", "ppv", "npv")}
    y, d = labels == positive, pred == positive
    tn, fp, fn, tp = _skm().confusion_matrix(y, d, labels=[False, True]).ravel()
    return {
        "sensitivity": _safe_div(tp, tp + fn),
        "specificity": _safe_div(tn, tn + fp),
        "ppv": _safe_div(tp, tp + fp),
        "npv": _safe_div(tn, tn + fn),
    }


def classification_metrics(
    probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], op: OperatingPoint
) -> dict[str, float]:
    """All scalar metrics of one prediction set at the served decision ``op``, as a flat dict.

    Keys: :data:`HEADLINE` (sensitivity/specificity/PPV/NPV of ``op.positive_class`` at ``op``'s decision),
    ``threshold`` (nan for argmax), ``n``, ``prevalence``, and per class ``precision|recall|f1|auc|support.<class>``.
    """
    probs, labels = check(probs, labels)
    k = probs.shape[1]
    if len(class_names) != k:
        raise MetricsError(f"{len(class_names)} class names for {k} probability columns")
    pos = op.positive_index
    if pos is not None and not 0 <= pos < k:
        raise MetricsError(f"positive class index {pos} is outside 0..{k - 1}")
    pred = op.predict(probs)
    every = list(range(k))
    p, r, f, support = _skm().precision_recall_fscore_support(labels, pred, labels=every, zero_division=0)
    present = np.unique(labels)
    n = labels.size
    out: dict[str, float] = {
        "auc": auc(probs, labels, pos),
        **decision_metrics(pred, labels, pos),
        "accuracy": float(_skm().accuracy_score(labels, pred)) if n else float("nan"),
        "balanced_accuracy": float(np.mean(r[present])) if present.size else float("nan"),
        "ece": expected_calibration_error(probs, labels),
        "brier": float(_skm().brier_score_loss(labels == pos, probs[:, pos])) if k == 2 and n else float("nan"),
        "threshold": float("nan") if op.threshold is None else float(op.threshold),
        "n": float(n),
        "prevalence": float(np.mean(labels == pos)) if pos is not None and n else float("nan"),
    }
    for i, name in enumerate(class_names):
        y = labels == i
        key = class_key(name)
        out[f"precision.{key}"] = float(p[i])
        out[f"recall.{key}"] = float(r[i])
        out[f"f1.{key}"] = float(f[i])
        out[f"auc.{key}"] = float(_skm().roc_auc_score(y, probs[:, i])) if 0 < y.sum() < y.size else float("nan")
        out[f"support.{key}"] = float(support[i])
    return out


def reliability_table(
    probs: np.ndarray, labels: np.ndarray, positive: int | None, bins: int = RELIABILITY_BINS
) -> list[tuple[float, float, float, int]]:
    """Calibration curve rows ``(bin_low, mean_predicted, observed_rate, n)`` over non-empty equal-width bins:
    of p(positive) against the positive rate (binary), else of the top-label confidence against accuracy."""
    from sklearn.calibration import calibration_curve

    probs, labels = check(probs, labels)
    if probs.shape[1] == 2 and positive is not None:
        score, event = probs[:, positive], labels == positive
    else:
        score, event = probs.max(axis=1), probs.argmax(axis=1) == labels
    if labels.size == 0 or event.all() or not event.any():
        return []
    observed, predicted = calibration_curve(event, score, n_bins=bins, strategy="uniform")
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], score), minlength=bins)  # calibration_curve's binning
    lows = edges[:-1][counts > 0]
    rows = zip(lows, predicted, observed, counts[counts > 0], strict=True)
    return [(float(lo), float(pr), float(ob), int(c)) for lo, pr, ob, c in rows]


# --- training ------------------------------------------------------------------------------------------------------


def epoch_metrics(num_classes: int) -> Any:
    """The torchmetrics collection Lightning logs on validation each epoch (names in :data:`EPOCH_METRICS`).

    Same definitions as :func:`classification_metrics` (macro one-vs-rest AUC = the binary AUC for two classes,
    top-label ECE with 15 bins) at the argmax decision.
    """
    from torchmetrics import MetricCollection
    from torchmetrics.classification import (
        MulticlassAccuracy,
        MulticlassAUROC,
        MulticlassCalibrationError,
        MulticlassRecall,
    )

    k = num_classes
    return MetricCollection(
        {
            "auc": MulticlassAUROC(num_classes=k, average="macro"),
            "accuracy": MulticlassAccuracy(num_classes=k, average="micro"),
            "balanced_accuracy": MulticlassRecall(num_classes=k, average="macro"),
            "ece": MulticlassCalibrationError(num_classes=k, n_bins=ECE_BINS, norm="l1"),
        }
    )


def headline_rows(flat: dict[str, float]) -> list[tuple[str, str, str]]:
    """``(metric, value, "[low, high]")`` rows of the :data:`HEADLINE` figures in a flat result (keys
    ``<metric>``, ``<metric>_ci_low``, ``<metric>_ci_high``), for every table that shows them."""
    rows = []
    for key in HEADLINE:
        if key in flat:
            lo, hi = flat.get(f"{key}_ci_low"), flat.get(f"{key}_ci_high")
            rows.append((key, f"{flat[key]:.4f}", "" if lo is None or hi is None else f"[{lo:.4f}, {hi:.4f}]"))
    return rows


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; sd nan for one value) of per-seed figures."""
    arr = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan
