"""Stratified k-fold: k nested child runs, mean/std on the parent."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from components.data.dataset import load_prepared
from components.training.kfold import cross_validate, stratified_folds
from tests.helpers.configs import smoke_training

pytestmark = pytest.mark.slow


def test_folds_are_stratified_and_disjoint() -> None:
    labels = np.array([0] * 30 + [1] * 90)
    folds = stratified_folds(labels, 3, seed=0)
    assert len(folds) == 3
    vals = np.concatenate([va for _, va in folds])
    assert sorted(vals) == list(range(120))
    for tr, va in folds:
        assert not set(tr) & set(va) and (labels[va] == 0).sum() == 10


def test_kfold_produces_k_child_runs(prepared_breastmnist, settings) -> None:
    cfg = smoke_training("search.enabled=false", "train.kfold=2", "train.epochs=1")
    cv = cross_validate(cfg, load_prepared(prepared_breastmnist), settings)
    client = MlflowClient(settings.tracking_uri)
    parent = client.get_run(cv.parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{cv.parent_run_id}'"
    )
    assert len(children) == 2 and {c.data.tags["medpipe.fold"] for c in children} == {"0", "1"}
    assert all(c.info.status == "FINISHED" for c in children)
    aucs = [f["auc"] for f in cv.fold_metrics]
    assert parent.data.metrics["cv_auc_mean"] == pytest.approx(np.mean(aucs))
    assert parent.data.metrics["cv_auc_std"] == pytest.approx(np.std(aucs, ddof=1))
