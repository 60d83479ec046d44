"""Two-sample drift tests with real p-values (reference rows vs current window rows).

Three families, each one p-value already corrected for the tests inside it:

- :func:`embedding_mmd`: kernel MMD² (Gaussian kernel, median-heuristic bandwidth on the pooled sample)
  between the model's whitened PCA embeddings, p-value by a permutation test
  (:func:`scipy.stats.permutation_test`, vectorised over permutations);
- :func:`softmax_shift`: black-box shift detection on the model's outputs: two-sample K-S per class
  probability (one column for two classes) and a chi-squared test on predicted-class counts, Bonferroni;
- :func:`image_statistics`: K-S per image statistic, Holm-corrected; columns constant in both samples are
  left out. (Holm is the three lines of :func:`holm`: statsmodels' ``multipletests`` runs ``gc.collect()``
  on every call, 0.4-0.5 s on a busy box, more than the whole rest of a check.)

Evidently's own embeddings MMD is not used (checked in 0.7.23, ``legacy/metrics/data_drift/
embedding_drift_methods.py``): with ``bootstrap=True`` it calls drift when the observed MMD² exceeds the
5th percentile (``quantile_probability=0.05``) of its bootstrap null, where the 95th is meant, so most
null windows would alarm; its null uses a kernel bandwidth fitted on the reference alone, not the one of
the observed statistic; and it returns no p-value. Its K-S and chi-squared stattests are the scipy calls
used here; calling scipy directly keeps a check within its time budget (benchmarks/drift_speed.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TestResult:
    """One family's verdict input: ``p_value`` (corrected within the family) and the statistic behind it."""

    name: str
    statistic: float
    p_value: float
    detail: str = ""
    parts: dict[str, float] = field(default_factory=dict)  # per-column corrected p-values, where there are several


def _subsample(x: np.ndarray, max_rows: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= max_rows else x[rng.choice(len(x), size=max_rows, replace=False)]


def embedding_mmd(
    reference: np.ndarray, current: np.ndarray, permutations: int = 500, max_rows: int = 300, seed: int = 0
) -> TestResult:
    """MMD² permutation test on (N, D) embeddings; each side subsampled to ``max_rows`` (a random subset keeps
    the test valid, only less powerful)."""
    from scipy.spatial.distance import cdist
    from scipy.stats import permutation_test

    rng = np.random.default_rng(seed)
    ref = _subsample(np.asarray(reference, dtype=np.float64), max_rows, rng)
    cur = _subsample(np.asarray(current, dtype=np.float64), max_rows, rng)
    pooled = np.concatenate([ref, cur])
    d2 = cdist(pooled, pooled, "sqeuclidean")
    bandwidth = float(np.median(d2[np.triu_indices(len(pooled), k=1)])) or 1.0
    kernel = np.exp(-d2 / bandwidth).astype(np.float32)  # float32: half the cost of the permutation matmuls

    def mmd2(x_idx: np.ndarray, y_idx: np.ndarray, axis: int = -1) -> np.ndarray:
        x_idx, y_idx = np.atleast_2d(x_idx).astype(int), np.atleast_2d(y_idx).astype(int)
        w = np.zeros((x_idx.shape[0], len(pooled)), dtype=np.float32)
        rows = np.arange(x_idx.shape[0])[:, None]
        w[rows, x_idx] = 1.0 / x_idx.shape[1]
        w[rows, y_idx] = -1.0 / y_idx.shape[1]
        out = np.einsum("bi,bi->b", w @ kernel, w).astype(np.float64)
        return out if out.shape[0] > 1 else out[0]

    res = permutation_test(
        (np.arange(len(ref)), np.arange(len(ref), len(pooled))),
        mmd2,
        permutation_type="independent",
        vectorized=True,
        n_resamples=permutations,
        alternative="greater",
        batch=min(permutations, 250),
        rng=rng,
    )
    stat = float(np.squeeze(res.statistic))
    return TestResult("embedding_mmd", stat, float(res.pvalue), f"MMD²={stat:.4g} ({len(ref)} vs {len(cur)} rows)")


def softmax_shift(
    ref_probs: np.ndarray,
    cur_probs: np.ndarray,
    class_names: list[str],
    decide: Callable[[np.ndarray], np.ndarray] | None = None,
) -> TestResult:
    """K-S per class probability + chi-squared on predicted classes (BBSD), Bonferroni over those tests.

    ``decide`` turns probabilities into the served decision (a binary model's stored threshold:
    ``ReferenceProfile.decide``); without it, argmax (multi-class models, or no operating point)."""
    from scipy.stats import chi2_contingency, ks_2samp

    ref_probs, cur_probs = np.asarray(ref_probs, np.float64), np.asarray(cur_probs, np.float64)
    k = ref_probs.shape[1]
    raw: dict[str, float] = {}
    stats: dict[str, float] = {}
    for c in range(1 if k == 2 else 0, k):
        res = ks_2samp(ref_probs[:, c], cur_probs[:, c], method="asymp")
        raw[f"p({class_names[c]})"], stats[f"p({class_names[c]})"] = float(res.pvalue), float(res.statistic)
    decide = decide or (lambda p: p.argmax(axis=1))
    counts = np.stack([np.bincount(decide(p), minlength=k) for p in (ref_probs, cur_probs)])
    counts = counts[:, counts.sum(axis=0) > 0]
    if counts.shape[1] > 1:
        chi = chi2_contingency(counts)
        raw["predicted_class"], stats["predicted_class"] = float(chi.pvalue), float(chi.statistic)
    m = len(raw)
    parts = {name: min(1.0, p * m) for name, p in raw.items()}
    worst = min(parts, key=parts.get)
    detail = f"lowest: {worst} ({'chi²' if worst == 'predicted_class' else 'K-S D'}={stats[worst]:.3g}); {m} tests"
    return TestResult("softmax", stats[worst], parts[worst], detail, parts)


def constant_columns(ref: pd.DataFrame, cur: pd.DataFrame, columns: list[str]) -> list[str]:
    """Columns with one value, the same one, in both samples (nothing to test, nothing to plot)."""
    both = np.concatenate([ref[columns].to_numpy(np.float64), cur[columns].to_numpy(np.float64)])
    with warnings.catch_warnings():  # an all-missing column is "constant": nothing to test
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanmin(both, axis=0), np.nanmax(both, axis=0)
    return [c for c, lo, hi in zip(columns, low, high, strict=True) if not lo < hi]


def holm(p_values: list[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down; the smallest is Bonferroni's ``m * min(p)``)."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    stepped = np.maximum.accumulate((len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def image_statistics(ref: pd.DataFrame, cur: pd.DataFrame, columns: list[str]) -> TestResult:
    """K-S per image statistic, Holm-adjusted; the family p-value is the smallest adjusted one."""
    from scipy.stats import ks_2samp

    skip = set(constant_columns(ref, cur, columns))
    tested = [c for c in columns if c not in skip]
    if not tested:
        return TestResult("image_statistics", 0.0, 1.0, "every image statistic is constant")
    results = [ks_2samp(ref[c].dropna().to_numpy(), cur[c].dropna().to_numpy(), method="asymp") for c in tested]
    adjusted = holm([r.pvalue for r in results])
    parts = {c: float(p) for c, p in zip(tested, adjusted, strict=True)}
    worst = int(np.argmin(adjusted))
    drifted = ", ".join(c for c, p in parts.items() if p < 0.05)
    detail = f"lowest: {tested[worst]} (K-S D={results[worst].statistic:.3g}); {len(tested)} tests, Holm"
    if drifted:
        detail += f"; adjusted p<0.05: {drifted}"
    return TestResult("image_statistics", float(results[worst].statistic), float(adjusted[worst]), detail, parts)
