"""One training run with a given config: Lightning fit on the prepared data, best checkpoint by val AUC,
one evaluation on test, the model folder, and everything logged to one MLflow run.

``train_model`` is the stage function; ``fit`` is the shared engine that search trials and k-fold
folds also call (with their own callbacks and without checkpoints).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar

from components.data.dataset import PreparedData, Split, load_split
from components.models.artifacts import save_model_dir
from components.models.registry import Classifier
from components.models.transfer import build_model
from components.tracking import experiment_name, lineage_tags, setup_mlflow, short_hash
from components.training import mlflow_log as ml
from components.training import plots
from components.training.augment import BatchAugment
from components.training.data import InMemoryDataModule, LoaderSettings, channel_stats, class_weights
from components.training.module import METRIC_NAMES, ClassifierModule, OptimSettings
from medpipe.config import PipelineConfig, TrainConfig
from medpipe.imaging.preprocessing import Preprocessing
from medpipe.settings import Settings

log = logging.getLogger(__name__)


class _DropLitLoggerTip(logging.Filter):
    """Lightning logs a LitLogger advert (rank_zero_info) for every Trainer without one; we log to MLflow."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(_DropLitLoggerTip())
# Lightning 2.6's own pytree helper builds torch's deprecated LeafSpec (torch >= 2.10): harmless, shown on every fit
warnings.filterwarnings(
    "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning,
    module=r"lightning\.pytorch\.utilities\._pytree",
)  # fmt: skip


@dataclass(frozen=True)
class TrainResult:
    run_id: str  # MLflow run of the final model
    model_dir: Path  # save_model_dir() output: model.pt + model_config.json + preprocessing.json
    checkpoint: Path  # best Lightning checkpoint (by val AUC)
    val_metrics: dict[str, float]
    test_metrics: dict[str, float]  # auc, accuracy, balanced_accuracy, precision, recall, f1, ece (+ loss)
    best_params: dict[str, Any]  # {} without search
    search_run_id: str | None


@dataclass
class FitOutcome:
    """What :func:`fit` hands back to train_model, a search trial or a fold."""

    module: ClassifierModule
    factory_kwargs: dict[str, Any]
    preprocessing: Preprocessing
    best_value: float  # best val_auc over the epochs
    val_metrics: dict[str, float]  # val metrics (no prefix) of the best epoch
    test_metrics: dict[str, float] = field(default_factory=dict)  # filled when test=True
    checkpoint: Path | None = None
    artifacts: list[Path] = field(default_factory=list)


# --- small pure helpers ------------------------------------------------------------------------


def use_gpu(t: TrainConfig) -> bool:
    return t.accelerator != "cpu" and torch.cuda.is_available()


def world_size(t: TrainConfig) -> int:
    """Processes that train together: ``WORLD_SIZE`` under torchrun/Lightning's launcher, else devices x nodes
    when Lightning will launch DDP itself (several GPUs, or a ``ddp*`` strategy on CPU)."""
    if "WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"])
    gpu, ddp = use_gpu(t), t.strategy.startswith("ddp")
    if not (gpu or ddp):
        return 1
    devices = t.devices if isinstance(t.devices, int) else (torch.cuda.device_count() if gpu else 1)
    return max(devices, 1) * t.num_nodes


def is_rank_zero() -> bool:
    """True in the one process that owns MLflow logging and the model folder (always, when not distributed)."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"]) == 0
    return int(os.environ.get("LOCAL_RANK", 0)) == 0 and int(os.environ.get("NODE_RANK", 0)) == 0


def resolve_precision(t: TrainConfig) -> str:
    """``auto``: bf16-mixed on a GPU, 32-true on CPU (16-mixed on CPU silently becomes bf16 and is slow)."""
    if t.precision != "auto":
        return t.precision
    return "bf16-mixed" if use_gpu(t) else "32-true"


def train_image_size(cfg: PipelineConfig, prepared: PreparedData) -> int:
    return cfg.train.image_size or prepared.image_size


def load_splits(prepared: PreparedData) -> dict[str, Split]:
    return {s: load_split(prepared.path, s) for s in ("train", "val", "test")}


def run_params(cfg: PipelineConfig, prepared: PreparedData) -> dict[str, Any]:
    """Flat params of a training run: model/train/augment sections + the data it saw."""
    dumped = cfg.model_dump(mode="json")
    params = ml.flatten("", {k: dumped[k] for k in ("model", "train", "augment")})
    params.update(
        {
            "data.source": cfg.data.source,
            "data.image_size": prepared.image_size,
            "data.version": prepared.data_version or "unknown",
            "train.image_size_effective": train_image_size(cfg, prepared),
            "train.precision_effective": resolve_precision(cfg.train),
        }
    )
    return params


def _unprefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): float(v) for k, v in metrics.items() if k.startswith(prefix)}


# --- the engine ----------------------------------------------------------------------------------


def fit(
    cfg: PipelineConfig,
    prepared: PreparedData,
    settings: Settings,
    splits: dict[str, Split],
    *,
    client: Any = None,
    run_id: str | None = None,
    ckpt_dir: Path | None = None,
    callbacks: list[L.Callback] | None = None,
    test: bool = False,
    work_dir: Path | None = None,
) -> FitOutcome:
    """Train ``cfg`` on ``splits`` (train/val[/test]); log to ``run_id`` when given.

    With ``ckpt_dir`` the best/last checkpoints go there and a rerun resumes from ``last.ckpt``;
    with ``test`` the best weights are evaluated once on the test split (plots into ``work_dir``).
    """
    t, gpu = cfg.train, use_gpu(cfg.train)
    if t.cpu_threads and not gpu:
        torch.set_num_threads(t.cpu_threads)  # 2+ threads on an oversubscribed box spin and run several x slower
    L.seed_everything(t.seed, workers=True, verbose=False)
    train = splits["train"]
    k = prepared.num_classes
    mean, std = channel_stats(train.images)
    size = train_image_size(cfg, prepared)
    net, kwargs, skipped = build_model(cfg.model, num_classes=k, in_channels=prepared.channels, settings=settings)
    channels_last = t.channels_last and gpu
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if t.compile:
        net.compile()  # in place: state_dict keys stay those of the plain Classifier

    weights = class_weights(train.labels, k)
    augment = BatchAugment(cfg.augment, seed=t.seed)
    dm = InMemoryDataModule(
        splits,
        LoaderSettings(
            batch_size=t.batch_size,
            train_size=size,
            sampler="weighted" if t.imbalance == "weighted_sampler" else "shuffle",
            seed=t.seed,
            device="cuda" if gpu else "cpu",
        ),
        mean,
        std,
        augment,
        sample_weights=weights,
    )
    optim = OptimSettings(
        lr=t.lr,
        weight_decay=t.weight_decay,
        optimizer=t.optimizer,
        scheduler=t.scheduler,
        epochs=t.epochs,
        freeze_backbone_epochs=cfg.model.freeze_backbone_epochs,
        channels_last=channels_last,
        tta=t.tta,
    )
    module = ClassifierModule(
        net, k, optim, class_weights=weights if t.imbalance == "weighted_loss" else None, augment=augment
    )
    pre = Preprocessing(
        image_size=prepared.image_size,
        train_image_size=size,
        channels=prepared.channels,
        mean=mean,
        std=std,
        class_names=list(prepared.class_names),
        model_name=cfg.model.name,
        data_version=prepared.data_version,
        decode=prepared.decode,
    )

    work_dir = Path(work_dir or tempfile.mkdtemp(prefix="medpipe-fit-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    artifacts = [_preview(dm, train, work_dir / "augmentation_preview.png", cfg)]
    if client is not None and run_id:
        ml.set_tags(
            client,
            run_id,
            {
                "medpipe.imbalance": t.imbalance,
                "medpipe.class_weights": json.dumps([round(w, 4) for w in weights]),
                "medpipe.init_weights": cfg.model.init_weights or "none",
                "medpipe.init_skipped_keys": ",".join(skipped)[:5000] or "none",
            },
        )
        ml.log_artifacts(client, run_id, artifacts)

    epoch_log = ml.MlflowEpochLogger(client, run_id)
    cbs: list[L.Callback] = [epoch_log]
    if t.early_stopping_patience > 0:
        cbs.append(EarlyStopping(monitor="val_auc", mode="max", patience=t.early_stopping_patience))
    checkpoint: ModelCheckpoint | None = None
    if ckpt_dir is not None:
        checkpoint = ModelCheckpoint(
            dirpath=ckpt_dir, filename="best-{epoch:03d}", monitor="val_auc", mode="max", save_top_k=1, save_last=True
        )
        cbs.append(checkpoint)
    progress = sys.stderr.isatty() and cfg.search.n_jobs == 1
    if progress:
        cbs.append(RichProgressBar())
    cbs.extend(callbacks or [])

    trainer = L.Trainer(
        max_epochs=t.epochs,
        accelerator="gpu" if gpu else "cpu",
        devices=t.devices if gpu or t.strategy.startswith("ddp") else 1,  # CPU DDP (gloo) honours devices
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=resolve_precision(t),
        gradient_clip_val=t.grad_clip or None,
        deterministic=t.deterministic,
        logger=False,
        callbacks=cbs,
        enable_checkpointing=checkpoint is not None,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(work_dir),
    )
    resume = ckpt_dir is not None and (Path(ckpt_dir) / "last.ckpt").is_file()
    if resume:
        last = Path(ckpt_dir) / "last.ckpt"
        epoch = torch.load(last, map_location="cpu", weights_only=False).get("epoch", -1)  # our own file
        log.info("resuming from %s (epoch %s)", last, epoch)
        if client is not None and run_id:
            ml.set_tags(client, run_id, {"medpipe.resumed_from_epoch": str(epoch)})
    trainer.fit(module, datamodule=dm, ckpt_path="last" if resume else None)
    if trainer.interrupted:
        raise KeyboardInterrupt("training was interrupted")

    out = FitOutcome(
        module=module,
        factory_kwargs=kwargs,
        preprocessing=pre,
        best_value=epoch_log.best_value,
        val_metrics=_unprefixed(epoch_log.best_metrics, "val_"),
        artifacts=artifacts,
    )
    if checkpoint is not None and checkpoint.best_model_path:
        out.checkpoint = Path(checkpoint.best_model_path)
        # the best weights' val metrics (exact also after a resume, when the epoch history is gone)
        val = trainer.validate(module, datamodule=dm, ckpt_path=str(out.checkpoint), verbose=False)[0]
        out.val_metrics = _unprefixed(val, "val_")
        out.best_value = out.val_metrics.get("auc", out.best_value)
    if test:
        ckpt = str(out.checkpoint) if out.checkpoint else None
        res = trainer.test(module, datamodule=dm, ckpt_path=ckpt, verbose=False)[0]
        out.test_metrics = _unprefixed(res, "test_")
        out.artifacts += _test_plots(module, pre.class_names, work_dir, out.test_metrics.get("auc"))
    return out


def _preview(dm: InMemoryDataModule, train: Split, path: Path, cfg: PipelineConfig) -> Path:
    """Augmentation preview grid: the first 8 training images before/after (an independent generator)."""
    n = min(8, len(train))
    raw = torch.from_numpy(np.ascontiguousarray(train.images[:n].transpose(0, 3, 1, 2)))
    from components.training.augment import resize

    before = resize(raw.float() / 255.0, dm.loader.train_size)
    after = BatchAugment(cfg.augment, seed=cfg.train.seed + 1)(before.clone())
    a = cfg.augment
    title = (
        f"hflip {a.hflip} vflip {a.vflip} rot {a.rotate_degrees:g} trans {a.translate:g} scale {a.scale:g} "
        f"bright {a.brightness:g} contr {a.contrast:g} crop {a.random_resized_crop:g} mixup {a.mixup_alpha:g}"
    )
    return plots.augmentation_preview(before.numpy(), after.numpy(), path, title)


def _test_plots(module: ClassifierModule, class_names: list[str], work_dir: Path, auc: float | None) -> list[Path]:
    probs = torch.cat([p for p, _ in module.test_outputs]).numpy()
    labels = torch.cat([y for _, y in module.test_outputs]).numpy()
    curves = plots.roc_curves(probs, labels, class_names)
    (work_dir / "roc.json").write_text(json.dumps(curves))
    paths = [plots.roc_png(curves, work_dir / "roc.png", auc), work_dir / "roc.json"]
    if module.confusion is not None:
        cm = module.confusion.numpy()
        paths.append(plots.confusion_matrix_png(cm, class_names, work_dir / "confusion_matrix.png"))
        (work_dir / "confusion_matrix.json").write_text(json.dumps({"class_names": class_names, "matrix": cm.tolist()}))
        paths.append(work_dir / "confusion_matrix.json")
    return paths


# --- the stage -----------------------------------------------------------------------------------


def run_key(cfg: PipelineConfig, prepared: PreparedData, kind: str) -> str:
    """Deterministic id of a run: same params + same data + same kind -> same checkpoint folder (resume)."""
    data = prepared.data_version or str(Path(prepared.path).resolve())
    return f"{kind}-{short_hash(cfg.params_hash() + data)}"


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
    cfg: PipelineConfig,
    prepared: PreparedData,
    settings: Settings,
    *,
    out_dir: Path,
    parent_run_id: str | None = None,
) -> TrainResult:
    """Train once with ``cfg`` (no search), evaluate the best checkpoint on test, write the model folder.

    Killed mid-run, the same call resumes from the last checkpoint of the same run key and keeps
    logging to the same MLflow run. With ``train.kfold >= 2`` a stratified k-fold CV runs first as
    k nested child runs; mean/std land on this run.
    """
    if not is_rank_zero():
        return _train_replica(cfg, prepared, settings, out_dir=Path(out_dir), parent_run_id=parent_run_id)
    client = ml.client_for(settings)
    exp_id = setup_mlflow(settings, experiment_name(cfg, "training"))
    key = run_key(cfg, prepared, "final")
    run_dir = settings.runs_dir / key
    if (run_dir / "complete").is_file():  # finished before: a rerun trains afresh (atomic for DDP replicas)
        trash = run_dir.with_name(f"{run_dir.name}.old-{uuid.uuid4().hex[:8]}")
        run_dir.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    distributed = world_size(cfg.train) > 1
    ckpt_dir = run_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    resume_id = _open_run_id(client, run_dir) if (ckpt_dir / "last.ckpt").is_file() else None
    tags = {**lineage_tags(cfg, prepared.data_version, settings), "medpipe.run_kind": "final", "medpipe.run_key": key}

    with ml.tracked_run(
        client, exp_id, f"train-{cfg.model.name}", tags, parent_run_id=parent_run_id, run_id=resume_id
    ) as run_id:
        (run_dir / "mlflow_run_id").write_text(run_id)
        ml.log_params(client, run_id, run_params(cfg, prepared))
        splits = load_splits(prepared)
        if cfg.train.kfold >= 2:
            from components.training.kfold import cross_validate

            cv = cross_validate(cfg, prepared, settings, parent_run_id=run_id, splits=splits)
            ml.log_metrics(client, run_id, cv.summary_metrics())
        outcome = fit(
            cfg, prepared, settings, splits, client=client, run_id=run_id, ckpt_dir=ckpt_dir, test=not distributed,
            work_dir=run_dir / "plots",
        )  # fmt: skip
        net: Classifier = outcome.module.net.to("cpu").to(memory_format=torch.contiguous_format)
        model_dir = save_model_dir(Path(out_dir), net, outcome.factory_kwargs, outcome.preprocessing)
        if distributed:  # the test split once, here, through the deployable path (a DDP test pads the shards)
            outcome.test_metrics, test_plots = _evaluate_saved(model_dir, splits["test"], run_dir / "plots")
            outcome.artifacts += test_plots
            ml.set_tags(client, run_id, {"medpipe.world_size": str(world_size(cfg.train))})
        ml.log_metrics(client, run_id, {f"best_val_{k}": v for k, v in outcome.val_metrics.items()})
        ml.log_metrics(client, run_id, {f"test_{k}": v for k, v in outcome.test_metrics.items()})
        ml.log_artifacts(client, run_id, [p for p in outcome.artifacts if "preview" not in p.name], "evaluation")
        ml.log_artifacts(client, run_id, sorted(p for p in model_dir.iterdir() if p.is_file()), "model_dir")
        ml.set_tags(client, run_id, {"medpipe.checkpoint": str(outcome.checkpoint)})
    (run_dir / "complete").write_text(run_id)
    missing = [m for m in METRIC_NAMES if m not in outcome.test_metrics]
    if missing:
        raise RuntimeError(f"test metrics {missing} were not computed")
    return TrainResult(
        run_id=run_id,
        model_dir=model_dir,
        checkpoint=outcome.checkpoint or model_dir / "model.pt",
        val_metrics=outcome.val_metrics,
        test_metrics=outcome.test_metrics,
        best_params={},
        search_run_id=parent_run_id,
    )


def _train_replica(
    cfg: PipelineConfig, prepared: PreparedData, settings: Settings, *, out_dir: Path, parent_run_id: str | None
) -> TrainResult:
    """A DDP rank other than 0: the same fit (its collectives), checkpoints only through rank 0 into the same
    folder; no MLflow run, no model folder, no test (rank 0 evaluates the saved model alone)."""
    run_dir = settings.runs_dir / run_key(cfg, prepared, "final")
    deadline = time.monotonic() + 300
    while (run_dir / "complete").is_file() and time.monotonic() < deadline:  # rank 0 clears a finished run first
        time.sleep(0.2)
    with tempfile.TemporaryDirectory(prefix="medpipe-rank-") as work:
        outcome = fit(cfg, prepared, settings, load_splits(prepared), ckpt_dir=run_dir / "checkpoints",
                      work_dir=Path(work))  # fmt: skip
    return TrainResult(
        run_id="",
        model_dir=out_dir,
        checkpoint=outcome.checkpoint or out_dir / "model.pt",
        val_metrics=outcome.val_metrics,
        test_metrics={},
        best_params={},
        search_run_id=parent_run_id,
    )


def _evaluate_saved(model_dir: Path, test: Split, work_dir: Path) -> tuple[dict[str, float], list[Path]]:
    """Test metrics + ROC/confusion plots of a saved model folder (one process, every test image once)."""
    from components.training.evaluate import evaluate_model_dir

    ev = evaluate_model_dir(model_dir, test)
    work_dir.mkdir(parents=True, exist_ok=True)
    curves = plots.roc_curves(ev.probs, test.labels, ev.class_names)
    (work_dir / "roc.json").write_text(json.dumps(curves))
    cm = {"class_names": ev.class_names, "matrix": ev.confusion.tolist()}
    (work_dir / "confusion_matrix.json").write_text(json.dumps(cm))
    paths = [
        plots.roc_png(curves, work_dir / "roc.png", ev.metrics.get("auc")),
        work_dir / "roc.json",
        plots.confusion_matrix_png(ev.confusion, ev.class_names, work_dir / "confusion_matrix.png"),
        work_dir / "confusion_matrix.json",
    ]
    return dict(ev.metrics), paths
