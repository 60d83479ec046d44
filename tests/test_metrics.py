"""medpipe.metrics: checked against hand-computed values and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medpipe.metrics import (
    MetricsError,
    OperatingPoint,
    argmax_point,
    bootstrap_cis,
    choose_operating_point,
    classification_metrics,
    expected_calibration_error,
    paired_auc_difference,
    positive_index,
    reliability_table,
)


def _binary(p1: list[float]) -> np.ndarray:
    p = np.asarray(p1, dtype=float)
    return np.stack([1 - p, p], axis=1)


def _noisy(n: int, signal: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    return _binary(list(np.clip(labels * signal + rng.uniform(0, 1 - signal, n), 0, 1))), labels


def test_binary_metrics_by_hand_at_a_threshold() -> None:
    probs = _binary([0.9, 0.8, 0.3, 0.6, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    op = OperatingPoint(rule="youden", positive_class="pos", positive_index=1, threshold=0.5)
    m = classification_metrics(probs, labels, ["neg", "pos"], op)
    assert m["auc"] == pytest.approx(8 / 9)  # 9 (pos, neg) pairs, 0.3 < 0.6 loses one
    # calls: 1,1,0,1,0,0 -> TP 2, FN 1, FP 1, TN 2
    assert (m["sensitivity"], m["specificity"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert (m["ppv"], m["npv"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert m["accuracy"] == pytest.approx(4 / 6) and m["threshold"] == 0.5 and m["n"] == 6
    # a lower threshold calls 0.3 positive: sensitivity 1, one more false positive stays
    low = classification_metrics(probs, labels, ["neg", "pos"], op.model_copy(update={"threshold": 0.25}))
    assert low["sensitivity"] == 1.0 and low["specificity"] == pytest.approx(2 / 3)


def test_operating_point_meets_its_target_on_validation() -> None:
    probs, labels = _noisy(400, 0.35, 3)
    names = ["benign", "malignant"]
    for rule, target in (("sensitivity", 0.9), ("specificity", 0.8)):
        op = choose_operating_point(probs, labels, names, 1, rule, target)
        m = classification_metrics(probs, labels, names, op)
        assert m[rule] >= target and m[rule] == pytest.approx(getattr(op, f"val_{rule}"))
        # the next stricter threshold would miss the target: this is the best admissible one
        assert op.positive_class == "malignant" and 0 < op.threshold < 1
    youden = choose_operating_point(probs, labels, names, 1, "youden", 0.0)
    m = classification_metrics(probs, labels, names, youden)
    assert m["sensitivity"] + m["specificity"] >= 1.3
    sens = choose_operating_point(probs, labels, names, 1, "sensitivity", 0.95)
    assert sens.threshold < choose_operating_point(probs, labels, names, 1, "sensitivity", 0.6).threshold


def test_multiclass_falls_back_to_argmax_and_says_so() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 30)
    logits = rng.normal(size=(90, 3)) + np.eye(3)[labels] * 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    op = choose_operating_point(probs, labels, ["a", "b c", "d"], 2, "specificity", 0.9)
    assert op.threshold is None and "argmax" in op.note and "argmax" in op.describe()
    m = classification_metrics(probs, labels, ["a", "b c", "d"], op)
    assert m["auc"] == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    assert {"auc.a", "auc.b_c", "f1.d"} <= set(m) and math.isnan(m["threshold"])
    cis = bootstrap_cis(probs, labels, op, n_resamples=200, seed=0)
    assert cis["auc"][0] < m["auc"] < cis["auc"][1]


def test_ece_zero_when_calibrated_and_large_when_overconfident() -> None:
    labels = np.array([1, 1, 0, 0])
    assert expected_calibration_error(_binary([1.0, 1.0, 0.0, 0.0]), labels) == pytest.approx(0.0)
    assert expected_calibration_error(_binary([0.0, 0.0, 1.0, 1.0]), labels) == pytest.approx(1.0)
    assert expected_calibration_error(_binary([0.75] * 4), labels) == pytest.approx(0.25)


def test_undefined_metrics_are_nan_and_bad_inputs_name_the_problem() -> None:
    op = argmax_point(["n", "p"], 1, "test")
    m = classification_metrics(_binary([0.2, 0.7]), np.array([1, 1]), ["n", "p"], op)
    assert math.isnan(m["auc"]) and math.isnan(m["specificity"]) and m["accuracy"] == pytest.approx(0.5)
    with pytest.raises(MetricsError, match="class names"):
        classification_metrics(_binary([0.1]), np.array([0]), ["a", "b", "c"], op)
    with pytest.raises(MetricsError, match="labels must lie"):
        classification_metrics(_binary([0.1]), np.array([3]), ["a", "b"], op)
    assert positive_index(None, ["a", "b"]) == 1 and positive_index("a", ["a", "b"]) == 0
    assert positive_index("1", ["a", "b"]) == 1
    with pytest.raises(MetricsError, match="not a class"):
        positive_index("c", ["a", "b"])
    with pytest.raises(MetricsError, match="outside"):
        positive_index(5, ["a", "b"])


def test_bootstrap_cis_contain_the_point_and_are_deterministic() -> None:
    probs, labels = _noisy(200, 0.35, 1)
    op = OperatingPoint(rule="youden", positive_class="p", positive_index=1, threshold=0.5)
    m = classification_metrics(probs, labels, ["n", "p"], op)
    cis = bootstrap_cis(probs, labels, op, n_resamples=500, seed=7)
    for key in ("auc", "sensitivity", "specificity", "ppv", "npv"):
        lo, hi = cis[key]
        assert lo <= m[key] <= hi and hi - lo < 0.3, key
    assert cis == bootstrap_cis(probs, labels, op, n_resamples=500, seed=7)
    assert all(math.isnan(v) for v in bootstrap_cis(probs[:3], np.array([0, 0, 1]), op, 100)["auc"])


def test_paired_difference_ties_on_the_same_model_and_sees_a_real_gain() -> None:
    probs, labels = _noisy(300, 0.3, 5)
    same = paired_auc_difference(probs, probs, labels, 1, n_resamples=300)
    assert same.difference == 0.0 and same.ci == (0.0, 0.0)
    rng = np.random.default_rng(9)
    jitter = _binary(list(np.clip(probs[:, 1] + rng.normal(0, 0.01, 300), 0, 1)))
    tie = paired_auc_difference(jitter, probs, labels, 1, n_resamples=300)
    assert tie.ci[0] < 0.0 < tie.ci[1] or abs(tie.difference) < 0.005
    better = _binary(list(np.clip(labels * 0.6 + rng.uniform(0, 0.4, 300), 0, 1)))
    gain = paired_auc_difference(better, probs, labels, 1, n_resamples=300)
    assert gain.difference > 0.1 and gain.ci[0] > 0.05 and "paired bootstrap" in gain.describe()


def test_reliability_rows_follow_the_positive_probability() -> None:
    probs, labels = _noisy(500, 0.4, 2)
    rows = reliability_table(probs, labels, 1)
    assert sum(n for *_, n in rows) == 500
    assert all(0 <= lo <= pred <= lo + 0.1 + 1e-9 for lo, pred, _, _ in rows)
