"""Seeded train/val/test assignment: stratified by class, and group-aware when groups are given.

Group-aware means every group (e.g. a patient id) lands in exactly one split, so no patient's
images are in both train and test. Both functions return an array of split names aligned with
the inputs and are deterministic for a given seed.
"""

from __future__ import annotations

import warnings

import numpy as np

from medpipe.errors import DataError


def stratified_split(labels: np.ndarray, val: float, test: float, seed: int) -> np.ndarray:
    """Per class: shuffle with ``seed``, then take ``round(n*test)`` for test and ``round(n*val)`` for val.

    A class with at least 3 images always gets one image in val and in test.
    """
    rng = np.random.default_rng(seed)
    out = np.full(len(labels), "train", dtype=object)
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n = len(idx)
        n_test, n_val = int(round(n * test)), int(round(n * val))
        if n >= 3:
            n_test, n_val = max(1, n_test), max(1, n_val)
        n_test = min(n_test, max(0, n - 1))
        n_val = min(n_val, max(0, n - 1 - n_test))
        out[idx[:n_test]] = "test"
        out[idx[n_test : n_test + n_val]] = "val"
    return out.astype(str)


def group_split(
    labels: np.ndarray, groups: np.ndarray, val: float, test: float, seed: int, *, where: str = "the source"
) -> np.ndarray:
    """Stratified, group-disjoint split with sklearn's ``StratifiedGroupKFold``.

    Test is one fold of ``round(1/test)`` folds; val is one fold of the rest with ``round((1-test)/val)``
    folds. Fold counts are capped by the number of groups; fewer than 3 groups cannot make 3 splits.
    """
    unique_groups = np.unique(groups)
    if len(unique_groups) < 3:
        raise DataError(
            f"{where}: {len(unique_groups)} distinct group(s); a group-aware train/val/test split needs at least 3 "
            "(drop the group column to split by image instead)"
        )
    out = np.full(len(labels), "train", dtype=object)
    test_idx = _one_fold(labels, groups, max(2, round(1 / test)), seed)
    out[test_idx] = "test"
    rest = np.flatnonzero(out == "train")
    if len(np.unique(groups[rest])) >= 2:
        val_idx = _one_fold(labels[rest], groups[rest], max(2, round((1 - test) / val)), seed + 1)
        out[rest[val_idx]] = "val"
    return out.astype(str)


def _one_fold(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold  # lazy: sklearn takes seconds to import

    n_splits = min(n_splits, len(np.unique(groups)))
    # StratifiedGroupKFold warns when a class has fewer members than folds; the split is still valid.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, held_out = next(iter(folds.split(np.zeros(len(labels)), labels, groups)))
    return held_out
