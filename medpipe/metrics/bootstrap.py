"""Bootstrap CIs of the headline metrics (stratified by class) and the paired test of two models' AUC on the same
images: ``scipy.stats.bootstrap``, vectorised, with AUC as the Mann-Whitney U statistic. Part of :mod:`medpipe.metrics`,
which re-exports the public names."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from medpipe.metrics.scores import CI_KEYS, MetricsError, OperatingPoint, auc, check


def _batch_auc(scores: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """AUC of class ``k`` for each row of a (B, n) batch of resampled scores with fixed labels ``y`` (n,)."""
    from scipy.stats import mannwhitneyu

    pos, neg = y == k, y != k
    u = mannwhitneyu(scores[..., pos], scores[..., neg], axis=-1, method="asymptotic").statistic
    return u / (pos.sum() * neg.sum())


def _batch_metrics(probs: np.ndarray, pred: np.ndarray, idx: np.ndarray, y: np.ndarray, pos: int | None) -> np.ndarray:
    """:data:`CI_KEYS` for each resample (row of ``idx``); labels ``y`` are fixed by the class strata."""
    k = probs.shape[1]
    present = np.unique(y)
    if k == 2:
        auc_b = _batch_auc(probs[idx, pos if pos is not None else 1], y, pos if pos is not None else 1)
    else:
        auc_b = np.mean([_batch_auc(probs[idx, c], y, c) for c in present], axis=0)
    d = pred[idx]
    recall = np.stack([(d[..., y == c] == c).mean(-1) for c in present])
    accuracy = (d == y).mean(-1)
    if pos is None:
        nan = np.full(accuracy.shape, np.nan)
        return np.stack([auc_b, nan, nan, nan, nan, accuracy, recall.mean(0)])
    is_pos = y == pos
    tp = (d[..., is_pos] == pos).sum(-1)
    fn = is_pos.sum() - tp
    fp = (d[..., ~is_pos] == pos).sum(-1)
    tn = (~is_pos).sum() - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        ppv, npv = tp / (tp + fp), tn / (tn + fn)
    return np.stack([auc_b, tp / (tp + fn), tn / (tn + fp), ppv, npv, accuracy, recall.mean(0)])


def _stratified_bootstrap(labels: np.ndarray, statistic: Any, n_resamples: int, seed: int, level: float) -> Any:
    """``scipy.stats.bootstrap`` over the case indices of each class (classes resampled separately, so every
    resample keeps the class counts and AUC stays defined); ``statistic(idx, y)`` gets (B, n) indices."""
    from scipy.stats import bootstrap

    classes = np.unique(labels)
    groups = [np.flatnonzero(labels == c) for c in classes]
    if len(groups) < 2 or min(len(g) for g in groups) < 2:
        return None
    y = np.concatenate([np.full(len(g), c) for g, c in zip(groups, classes, strict=True)])

    def stat(*idx: np.ndarray, axis: int = -1) -> np.ndarray:
        return statistic(np.concatenate(idx, axis=-1), y)

    import warnings

    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # nan resamples (e.g. PPV without a positive call)
        return bootstrap(
            groups, stat, n_resamples=n_resamples, vectorized=True, method="percentile",
            confidence_level=level, rng=np.random.default_rng(seed),
        )  # fmt: skip


def bootstrap_cis(
    probs: np.ndarray, labels: np.ndarray, op: OperatingPoint, n_resamples: int, seed: int = 0, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile ``level`` CIs of :data:`CI_KEYS` at ``op`` (stratified bootstrap, deterministic per ``seed``).
    ``(nan, nan)`` where a class has fewer than two cases."""
    probs, labels = check(probs, labels)
    pred = op.predict(probs)
    res = _stratified_bootstrap(
        labels, lambda idx, y: _batch_metrics(probs, pred, idx, y, op.positive_index), n_resamples, seed, level
    )
    if res is None:
        return {key: (math.nan, math.nan) for key in CI_KEYS}
    lo, hi = res.confidence_interval
    return {key: (float(lo[i]), float(hi[i])) for i, key in enumerate(CI_KEYS)}


@dataclass(frozen=True)
class PairedComparison:
    """AUC(challenger) - AUC(champion) on the same images, with a paired stratified-bootstrap CI."""

    challenger_auc: float
    champion_auc: float
    difference: float
    ci: tuple[float, float]
    level: float
    n_resamples: int
    n: int

    def describe(self) -> str:
        lo, hi = self.ci
        return (
            f"AUC difference {self.difference:+.4f} (challenger {self.challenger_auc:.4f} - champion "
            f"{self.champion_auc:.4f}), paired bootstrap {self.level:.0%} CI [{lo:+.4f}, {hi:+.4f}] on {self.n} images"
        )


def paired_auc_difference(
    challenger: np.ndarray,
    champion: np.ndarray,
    labels: np.ndarray,
    positive: int | None,
    n_resamples: int,
    seed: int = 0,
    level: float = 0.95,
) -> PairedComparison:
    """Paired bootstrap of the AUC difference: both models are scored on the same resampled images each time."""
    a, labels = check(challenger, labels)
    b, _ = check(champion, labels)
    if a.shape != b.shape:
        raise MetricsError(f"challenger probs {a.shape} and champion probs {b.shape} must cover the same images")

    def diff(idx: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _batch_metrics(a, a.argmax(1), idx, y, positive)[0] - _batch_metrics(b, b.argmax(1), idx, y, positive)[0]

    point_a, point_b = auc(a, labels, positive), auc(b, labels, positive)
    res = _stratified_bootstrap(labels, diff, n_resamples, seed, level)
    ci = (math.nan, math.nan) if res is None else tuple(float(v) for v in res.confidence_interval)
    return PairedComparison(point_a, point_b, point_a - point_b, ci, level, n_resamples, int(labels.size))  # type: ignore[arg-type]
