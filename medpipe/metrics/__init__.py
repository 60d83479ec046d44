"""The one metrics module: every surface that shows a number about a model computes it here.

Training (per-epoch validation), the evaluation of the served graph, the promotion gate, the model card,
the DVC metrics and the summaries all call these functions, so a headline figure is the same everywhere.

- AUC, confusion counts, calibration curve, Brier score: scikit-learn; ECE: torchmetrics (top label, 15 bins);
  bootstrap CIs and the paired test: ``scipy.stats.bootstrap`` (stratified by class, vectorised), AUC inside the
  bootstrap as the Mann-Whitney U statistic of ``scipy.stats`` (``AUC = U / (n_pos * n_neg)``, ties count 1/2,
  identical to ``roc_auc_score``).
- An :class:`OperatingPoint` is the served decision: a threshold on the positive class's probability chosen on
  the validation split (binary models), or argmax (multi-class models, which say so).

``probs`` is (N, K) with rows summing to 1, ``labels`` (N,) ints in ``0..K-1``. A metric that is undefined on the
given labels (AUC with one class present, PPV with no positive call) is ``nan``, never an exception.
"""

from __future__ import annotations

from medpipe.metrics.bootstrap import PairedComparison, bootstrap_cis, paired_auc_difference
from medpipe.metrics.scores import (
    CI_KEYS,
    ECE_BINS,
    EPOCH_METRICS,
    HEADLINE,
    RELIABILITY_BINS,
    SEED_FIGURES,
    SEED_PREFIX,
    MetricsError,
    OperatingPoint,
    Rule,
    argmax_point,
    auc,
    check,
    choose_operating_point,
    class_key,
    classification_metrics,
    decision_metrics,
    epoch_metrics,
    expected_calibration_error,
    headline_rows,
    mean_sd,
    positive_index,
    rarer_class,
    reliability_table,
)

__all__ = [
    "CI_KEYS",
    "ECE_BINS",
    "EPOCH_METRICS",
    "HEADLINE",
    "MetricsError",
    "OperatingPoint",
    "PairedComparison",
    "RELIABILITY_BINS",
    "SEED_FIGURES",
    "SEED_PREFIX",
    "Rule",
    "argmax_point",
    "auc",
    "bootstrap_cis",
    "check",
    "choose_operating_point",
    "class_key",
    "classification_metrics",
    "decision_metrics",
    "epoch_metrics",
    "expected_calibration_error",
    "headline_rows",
    "mean_sd",
    "paired_auc_difference",
    "positive_index",
    "rarer_class",
    "reliability_table",
]
