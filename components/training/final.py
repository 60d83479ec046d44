"""Search then train: the one path from a config to a trained model that the CLI (``medpipe train --direct``,
the DVC ``train`` stage) and the training flow all take.

With ``train.seeds: N > 1`` the final config is trained N times (seeds ``seed``, ``seed+1``, ...) as child runs
of one ``seeds`` run. With ``train.ensemble: true`` the N members become one model folder
(:class:`~components.models.ensemble.EnsembleClassifier`) logged on the ``seeds`` run, which is then the model's
run; otherwise the first member (seed ``train.seed``, the model ``seeds: 1`` gives) is the model and the others
only measure the variance (:mod:`components.evaluation.seeds`).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from components.data.dataset import PreparedData
from components.models.artifacts import CHECKPOINT, save_ensemble_dir
from components.tracking import experiment_name, lineage_tags, log_dataset_inputs, run_name, setup_mlflow
from components.training import mlflow_log as ml
from components.training.distributed import is_rank_zero
from components.training.engine import run_params
from components.training.search import run_search
from components.training.train import TrainResult, train_model
from medpipe.config import TrainingConfig
from medpipe.settings import Settings


def train_best(cfg: TrainingConfig, prepared: PreparedData, settings: Settings, *, out_dir: Path) -> TrainResult:
    """Search (if ``search.enabled``), then retrain with the best params on train (early-stopped on val), once per
    seed of ``train.seeds``; the final run(s) are children of the search's parent run. Test figures come from the
    exported graph's evaluation."""
    found = run_search(cfg, prepared, settings) if cfg.search.enabled else None
    final_cfg = cfg.with_overrides(found.best_params) if found else cfg
    parent = found.parent_run_id if found else None
    if final_cfg.train.seeds > 1:
        result = train_seeds(final_cfg, prepared, settings, out_dir=out_dir, parent_run_id=parent)
    else:
        result = train_model(final_cfg, prepared, settings, out_dir=out_dir, parent_run_id=parent)
    if found is None:
        return result
    ml.set_tags(ml.client_for(settings), found.parent_run_id, {"medpipe.final_run_id": result.run_id})
    return dataclasses.replace(result, best_params=found.best_params, search_run_id=found.parent_run_id)


def member_config(cfg: TrainingConfig, index: int) -> TrainingConfig:
    """Member ``index`` (0-based) of a seeds run: the same config, seed ``train.seed + index``, trained alone."""
    return cfg.with_overrides({"train.seed": cfg.train.seed + index, "train.seeds": 1, "train.ensemble": False})


def member_dir(out_dir: Path, index: int) -> Path:
    """Where member ``index`` of the model at ``out_dir`` is written (beside it: ``<out_dir>-members/seed-<i>``)."""
    return Path(out_dir).with_name(f"{Path(out_dir).name}-members") / f"seed-{index}"


def train_seeds(
    cfg: TrainingConfig, prepared: PreparedData, settings: Settings, *, out_dir: Path, parent_run_id: str | None
) -> TrainResult:
    """Train ``cfg.train.seeds`` members under one ``seeds`` run; the result is the ensemble (``train.ensemble``)
    or the first member, with every member in ``members``."""
    out_dir = Path(out_dir)
    n = cfg.train.seeds
    if not is_rank_zero():  # DDP replicas follow rank 0 through the same members
        members = [
            train_model(member_config(cfg, i), prepared, settings, out_dir=member_dir(out_dir, i),
                        parent_run_id=None)
            for i in range(n)
        ]  # fmt: skip
        return dataclasses.replace(members[0], members=tuple(members))
    client = ml.client_for(settings)
    exp_id = setup_mlflow(settings, experiment_name(cfg.project.name, "training"))
    kind = "ensemble" if cfg.train.ensemble else "seeds"
    tags = {
        **lineage_tags(cfg.lineage(), prepared.data_version, settings),
        "medpipe.run_kind": kind,
        "medpipe.seeds": str(n),
    }
    seeds = f"{cfg.train.seed}..{cfg.train.seed + n - 1}"
    description = f"`{cfg.model.name}` trained with seeds {seeds} (child runs). " + (
        "The registered model is their ensemble (mean probabilities, one ONNX graph)."
        if cfg.train.ensemble
        else f"The registered model is the seed-{cfg.train.seed} member; the others measure the variance."
    )
    with ml.tracked_run(
        client,
        exp_id,
        run_name(cfg.lineage(), f"{kind}{n}"),
        tags,
        parent_run_id=parent_run_id,
        description=description,
    ) as seeds_run:
        members = []
        for i in range(n):
            member = train_model(
                member_config(cfg, i), prepared, settings, out_dir=member_dir(out_dir, i),
                parent_run_id=seeds_run,
            )  # fmt: skip
            ml.set_tags(client, member.run_id, {"medpipe.seed_member": str(i + 1), "medpipe.seeds_run_id": seeds_run})
            members.append(member)
        ml.log_params(client, seeds_run, run_params(cfg, prepared))
        log_dataset_inputs(client, seeds_run, cfg.project.name, prepared)
        ml.set_tags(client, seeds_run, {"medpipe.member_run_ids": ",".join(m.run_id for m in members)})
        for i, m in enumerate(members):
            ml.log_metrics(client, seeds_run, {f"member{i + 1}_best_val_{k}": v for k, v in m.val_metrics.items()})
        if not cfg.train.ensemble:  # the first member is the model, at out_dir like a one-seed run's
            ml.set_tags(client, seeds_run, {"medpipe.model_run_id": members[0].run_id})
            shutil.copytree(members[0].model_dir, out_dir, dirs_exist_ok=True)
            first = dataclasses.replace(members[0], model_dir=out_dir)
            return dataclasses.replace(first, members=tuple(members), seeds_run_id=seeds_run)
        model_dir = save_ensemble_dir(out_dir, [m.model_dir for m in members])
        ml.log_artifacts(client, seeds_run, sorted(p for p in model_dir.iterdir() if p.is_file()), "model_dir")
        val = {k: sum(m.val_metrics[k] for m in members) / n for k in members[0].val_metrics}
        ml.log_metrics(client, seeds_run, {f"members_mean_best_val_{k}": v for k, v in val.items()})
    return TrainResult(
        run_id=seeds_run,
        model_dir=model_dir,
        checkpoint=model_dir / CHECKPOINT,
        val_metrics=val,
        best_params={},
        search_run_id=parent_run_id,
        members=tuple(members),
        seeds_run_id=seeds_run,
    )
