"""Metrics from probabilities: checked against hand-computed values and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from components.evaluation import (
    bootstrap_ci,
    classification_metrics,
    expected_calibration_error,
    sensitivity_at_specificity,
)


def _binary(p1: list[float]) -> np.ndarray:
    p = np.asarray(p1, dtype=float)
    return np.stack([1 - p, p], axis=1)


def test_binary_metrics_by_hand() -> None:
    probs = _binary([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    m = classification_metrics(probs, labels, ["neg", "pos"], positive=1, specificity=0.6)
    # pairs (pos, neg): 9 pairs, 0.3 < 0.6 loses one -> 8/9
    assert m["auc"] == pytest.approx(8 / 9)
    # predictions: 1,1,0,1,0,0 -> 4/6 correct
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["recall.pos"] == pytest.approx(2 / 3)
    assert m["recall.neg"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["precision.pos"] == pytest.approx(2 / 3)
    assert m["support.pos"] == 3 and m["n"] == 6
    # specificity >= 0.6 allows one false positive (0.6) of 3 negatives -> threshold 0.3 catches all positives
    assert m["sensitivity_at_specificity"] == pytest.approx(1.0)
    # specificity 1.0: threshold above 0.6 -> only 0.9, 0.8
    assert sensitivity_at_specificity(probs, labels, 1, 1.0) == pytest.approx(2 / 3)
    # the negative class as positive: its scores are 1 - p
    assert sensitivity_at_specificity(probs, labels, 0, 0.6) == pytest.approx(1.0)


def test_multiclass_auc_is_macro_ovr_and_per_class_present() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 30)
    logits = rng.normal(size=(90, 3)) + np.eye(3)[labels] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(probs, labels, ["a", "b c", "d"], positive=2, specificity=0.9)
    assert m["auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert {"auc.a", "auc.b_c", "f1.d"} <= set(m)
    assert 0.5 < m["auc"] < 1.0


def test_ece_zero_when_calibrated_and_large_when_overconfident() -> None:
    labels = np.array([1, 1, 0, 0])
    perfect = _binary([1.0, 1.0, 0.0, 0.0])
    assert expected_calibration_error(perfect, labels) == pytest.approx(0.0)
    wrong = _binary([0.0, 0.0, 1.0, 1.0])  # confident and always wrong
    assert expected_calibration_error(wrong, labels) == pytest.approx(1.0)
    half = _binary([0.75, 0.75, 0.75, 0.75])  # confidence 0.75, accuracy 0.5
    assert expected_calibration_error(half, labels) == pytest.approx(0.25)


def test_undefined_metrics_are_nan_not_errors() -> None:
    probs = _binary([0.2, 0.7])
    labels = np.array([1, 1])
    m = classification_metrics(probs, labels, ["n", "p"], positive=1, specificity=0.9)
    assert math.isnan(m["auc"]) and math.isnan(m["sensitivity_at_specificity"])
    assert m["accuracy"] == pytest.approx(0.5)


def test_bad_shapes_name_the_problem() -> None:
    with pytest.raises(ValueError, match="class names"):
        classification_metrics(_binary([0.1]), np.array([0]), ["a", "b", "c"], 0, 0.9)
    with pytest.raises(ValueError, match="labels must lie"):
        classification_metrics(_binary([0.1]), np.array([3]), ["a", "b"], 0, 0.9)


def test_bootstrap_ci_contains_point_estimate_and_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    p = np.clip(labels * 0.35 + rng.uniform(0, 0.65, 200), 0, 1)
    probs = _binary(list(p))
    point = classification_metrics(probs, labels, ["n", "p"], 1, 0.9)["auc"]
    low, high = bootstrap_ci(probs, labels, "auc", n=300, seed=7)
    assert low < point < high
    assert 0.0 < high - low < 0.2
    assert (low, high) == bootstrap_ci(probs, labels, "auc", n=300, seed=7)
    s_low, s_high = bootstrap_ci(probs, labels, "sensitivity_at_specificity", n=200, seed=7, positive=1)
    assert 0.0 <= s_low <= s_high <= 1.0
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_ci(probs, labels, "nope", n=10, seed=0)
