"""One training run with a given config: Lightning fit on the prepared data, best checkpoint by val AUC,
the model folder, and everything logged to one MLflow run. The test split is not touched here: the one
evaluation of the model is that of its exported graph (:mod:`components.evaluation`), after export.

``train_model`` is the stage function; ``fit`` is the shared engine that search trials and k-fold
folds also call (with their own callbacks and without checkpoints).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout

from components.data.dataset import PreparedData
from components.data.swap import discard
from components.models.artifacts import CHECKPOINT, save_model_dir
from components.models.registry import Classifier
from components.tracking import (
    experiment_name,
    lineage_tags,
    log_dataset_inputs,
    run_name,
    setup_mlflow,
    short_hash,
)
from components.training import mlflow_log as ml
from components.training.distributed import is_rank_zero, world_size
from components.training.engine import fit, load_splits, run_params
from components.training.kfold import cross_validate
from components.training.streaming import StreamedSplit
from medpipe.config import TrainingConfig
from medpipe.errors import DataError, MedpipeError
from medpipe.settings import Settings

CLEAR_LOCK_S = 300.0  # how long a rank waits for another to clear a finished run folder


@dataclass(frozen=True)
class TrainResult:
    run_id: str  # MLflow run of the final model
    model_dir: Path  # save_model_dir() output: model.ckpt (weights + hyperparameters) + preprocessing.json
    checkpoint: Path  # best Lightning checkpoint (by val AUC)
    val_metrics: dict[str, float]
    best_params: dict[str, Any]  # {} without search
    search_run_id: str | None
    members: tuple[TrainResult, ...] = ()  # train.seeds > 1: every member (seed order); () for one seed
    seeds_run_id: str | None = None  # train.seeds > 1: the run the members are children of (mean +- sd lands there)

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members) and self.run_id == self.seeds_run_id


# --- the stage -----------------------------------------------------------------------------------


def run_key(cfg: TrainingConfig, prepared: PreparedData, kind: str) -> str:
    """Deterministic id of a run: same params + same data + same kind -> same checkpoint folder (resume)."""
    data = prepared.data_version or str(Path(prepared.path).resolve())
    return f"{kind}-{short_hash(cfg.params_hash() + data)}"


def clear_finished(run_dir: Path, timeout_s: float = CLEAR_LOCK_S) -> None:
    """A run that finished before (its ``complete`` marker) is moved aside and deleted, so that a rerun trains
    afresh instead of resuming from its checkpoints.

    Every DDP rank calls this before ``fit`` under one file lock (filelock): whichever rank comes first clears
    the folder and the others find it cleared, so no rank reads the old run's ``last.ckpt``."""
    lock_file = run_dir.with_name(f".{run_dir.name}.lock")  # hidden: globs of final-* see run folders only
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(lock_file, timeout=timeout_s):
            if (run_dir / "complete").is_file():
                discard(run_dir)
    except Timeout:
        raise MedpipeError(
            f"the training run folder {run_dir} stayed locked for {timeout_s:.0f} s by another process of this "
            f"run key; wait for it to finish, or delete {lock_file} if no such process is running"
        ) from None


def _open_run_id(client: Any, run_dir: Path) -> str | None:
    """The MLflow run an interrupted attempt of this run key was logging to (if it still exists)."""
    marker = run_dir / "mlflow_run_id"
    if not marker.is_file():
        return None
    try:
        run = client.get_run(marker.read_text().strip())
    except Exception:
        return None
    return run.info.run_id if run.info.lifecycle_stage == "active" else None


def train_model(
    cfg: TrainingConfig,
    prepared: PreparedData,
    settings: Settings,
    *,
    out_dir: Path,
    parent_run_id: str | None = None,
) -> TrainResult:
    """Train once with ``cfg`` (no search) and write the best checkpoint's model folder (val metrics only).

    Killed mid-run, the same call resumes from the last checkpoint of the same run key and keeps
    logging to the same MLflow run. With ``train.kfold >= 2`` a stratified k-fold CV runs first as
    k nested child runs; mean/std land on this run.
    """
    if not is_rank_zero():
        return _train_replica(cfg, prepared, settings, out_dir=Path(out_dir), parent_run_id=parent_run_id)
    client = ml.client_for(settings)
    exp_id = setup_mlflow(settings, experiment_name(cfg.project.name, "training"))
    key = run_key(cfg, prepared, "final")
    run_dir = settings.runs_dir / key
    clear_finished(run_dir)
    distributed = world_size(cfg.train) > 1
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    resume_id = _open_run_id(client, run_dir) if (ckpt_dir / "last.ckpt").is_file() else None
    tags = {
        **lineage_tags(cfg.lineage(), prepared.data_version, settings),
        "medpipe.run_kind": "final",
        "medpipe.run_key": key,
    }

    description = (
        f"Final training of `{cfg.model.name}` on `{cfg.project.name}` (data version `{prepared.data_version}`, "
        f"profile `{cfg.profile or 'custom'}`): early-stopped on val AUC, evaluated once on the test split."
    )
    with ml.tracked_run(
        client, exp_id, run_name(cfg.lineage()), tags, parent_run_id=parent_run_id, run_id=resume_id,
        system_metrics=True, description=description,
    ) as run_id:  # fmt: skip
        (run_dir / "mlflow_run_id").write_text(run_id)
        ml.log_params(client, run_id, run_params(cfg, prepared))
        if resume_id is None:
            log_dataset_inputs(client, run_id, cfg.project.name, prepared)
        splits = load_splits(prepared, cfg.train)
        if cfg.train.kfold >= 2:
            if isinstance(splits["train"], StreamedSplit):
                raise DataError(
                    f"train.kfold={cfg.train.kfold} needs the data in memory, but {prepared.path} is over "
                    f"train.stream_above_mb={cfg.train.stream_above_mb:g}; raise it or set train.kfold=0"
                )
            cv = cross_validate(cfg, prepared, settings, parent_run_id=run_id, splits=splits)  # type: ignore[arg-type]
            ml.log_metrics(client, run_id, cv.summary_metrics())
        outcome = fit(
            cfg, prepared, settings, splits, client=client, run_id=run_id, ckpt_dir=ckpt_dir,
            work_dir=run_dir / "plots", callbacks=[ml.EpochProgress("final")],
        )  # fmt: skip
        net: Classifier = outcome.module.net.to("cpu").to(memory_format=torch.contiguous_format)
        model_dir = save_model_dir(
            Path(out_dir), net, outcome.factory_kwargs, outcome.preprocessing, dict(outcome.module.hparams)
        )
        if distributed:
            ml.set_tags(client, run_id, {"medpipe.world_size": str(world_size(cfg.train))})
        ml.log_metrics(client, run_id, {f"best_val_{k}": v for k, v in outcome.val_metrics.items()})
        ml.log_artifacts(client, run_id, sorted(p for p in model_dir.iterdir() if p.is_file()), "model_dir")
        ml.set_tags(client, run_id, {"medpipe.checkpoint": str(outcome.checkpoint)})
    (run_dir / "complete").write_text(run_id)
    return TrainResult(
        run_id=run_id,
        model_dir=model_dir,
        checkpoint=outcome.checkpoint or model_dir / CHECKPOINT,
        val_metrics=outcome.val_metrics,
        best_params={},
        search_run_id=parent_run_id,
    )


def _train_replica(
    cfg: TrainingConfig, prepared: PreparedData, settings: Settings, *, out_dir: Path, parent_run_id: str | None
) -> TrainResult:
    """A DDP rank other than 0: the same fit (its collectives), checkpoints only through rank 0 into the same
    folder; no MLflow run, no model folder."""
    run_dir = settings.runs_dir / run_key(cfg, prepared, "final")
    clear_finished(run_dir)
    with tempfile.TemporaryDirectory(prefix="medpipe-rank-") as work:
        outcome = fit(cfg, prepared, settings, load_splits(prepared, cfg.train), ckpt_dir=run_dir / "checkpoints",
                      work_dir=Path(work))  # fmt: skip
    return TrainResult(
        run_id="",
        model_dir=out_dir,
        checkpoint=outcome.checkpoint or out_dir / CHECKPOINT,
        val_metrics=outcome.val_metrics,
        best_params={},
        search_run_id=parent_run_id,
    )
