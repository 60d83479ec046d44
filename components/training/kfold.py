"""Stratified k-fold cross-validation over train+val: k nested child runs, mean ± std on the parent."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from components.data.dataset import PreparedData, Split
from components.tracking import experiment_name, lineage_tags, setup_mlflow
from components.training import mlflow_log as ml
from components.training.engine import fit, load_splits
from medpipe.config import TrainingConfig
from medpipe.settings import Settings


@dataclass(frozen=True)
class CrossValResult:
    parent_run_id: str
    fold_run_ids: list[str]
    fold_metrics: list[dict[str, float]]  # val metrics of each fold's best epoch
    mean: dict[str, float]
    std: dict[str, float]

    def summary_metrics(self) -> dict[str, float]:
        """``cv_<metric>_mean`` / ``cv_<metric>_std``, as logged on the parent run."""
        out = {f"cv_{k}_mean": v for k, v in self.mean.items()}
        out.update({f"cv_{k}_std": v for k, v in self.std.items()})
        return out


def stratified_folds(labels: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train_idx, val_idx) per fold, class proportions kept in every fold."""
    from sklearn.model_selection import StratifiedKFold

    counts = np.bincount(labels)
    if counts[counts > 0].min() < k:
        raise ValueError(f"train.kfold={k} needs at least {k} images of every class; the smallest class has fewer")
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(labels)), labels))


def cross_validate(
    cfg: TrainingConfig,
    prepared: PreparedData,
    settings: Settings,
    *,
    parent_run_id: str | None = None,
    splits: dict[str, Split] | None = None,
) -> CrossValResult:
    """Run ``cfg.train.kfold`` folds on the pooled train+val images (the test split stays untouched).

    Each fold is a child run of ``parent_run_id`` (or of a new ``cv`` run); the parent gets
    ``cv_<metric>_mean``/``_std`` of the folds' best-epoch val metrics.
    """
    k = cfg.train.kfold
    if k < 2:
        raise ValueError(f"train.kfold={k}: cross-validation needs k >= 2")
    splits = splits or load_splits(prepared)
    images = np.concatenate([splits["train"].images, splits["val"].images])
    labels = np.concatenate([splits["train"].labels, splits["val"].labels])
    client = ml.client_for(settings)
    exp_id = setup_mlflow(settings, experiment_name(cfg.project.name, "training"))
    tags = lineage_tags(cfg.lineage(), prepared.data_version, settings)

    def run_folds(parent: str) -> CrossValResult:
        run_ids, metrics = [], []
        for i, (tr, va) in enumerate(stratified_folds(labels, k, cfg.train.seed)):
            fold_splits = {"train": Split(images[tr], labels[tr]), "val": Split(images[va], labels[va])}
            fold_tags = {**tags, "medpipe.run_kind": "fold", "medpipe.fold": str(i)}
            with ml.tracked_run(client, exp_id, f"fold-{i}", fold_tags, parent_run_id=parent) as rid:
                ml.log_params(client, rid, {"fold": i, "kfold": k, "n_train": len(tr), "n_val": len(va)})
                out = fit(cfg, prepared, settings, fold_splits, client=client, run_id=rid)
                ml.log_metrics(client, rid, {f"best_val_{m}": v for m, v in out.val_metrics.items()})
            run_ids.append(rid)
            metrics.append(out.val_metrics)
        keys = sorted(set.intersection(*(set(m) for m in metrics)))
        mean = {m: float(np.mean([f[m] for f in metrics])) for m in keys}
        std = {m: float(np.std([f[m] for f in metrics], ddof=1)) for m in keys}
        result = CrossValResult(parent, run_ids, metrics, mean, std)
        ml.log_metrics(client, parent, result.summary_metrics())
        return result

    if parent_run_id is not None:
        return run_folds(parent_run_id)
    with ml.tracked_run(client, exp_id, f"cv-{cfg.model.name}", {**tags, "medpipe.run_kind": "cv"}) as parent:
        ml.log_params(client, parent, {"kfold": k, "model.name": cfg.model.name})
        return run_folds(parent)
