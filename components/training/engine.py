"""The training engine: one Lightning fit of a config on prepared splits (a trial, a fold or the final run)."""

from __future__ import annotations

import json
import logging
import tempfile
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from components.data.dataset import PreparedData, Split
from components.data.shards import pixel_stats
from components.models.transfer import build_model
from components.tracking import flat_params
from components.training import mlflow_log as ml
from components.training import plots, streaming
from components.training.augment import BatchAugment
from components.training.data import InMemoryDataModule, LoaderSettings, channel_stats, class_weights
from components.training.distributed import resolve_precision, use_gpu
from components.training.module import ClassifierModule, OptimSettings
from components.training.streaming import StreamedSplit, StreamingDataModule
from medpipe.config import AugmentConfig, TrainConfig, TrainingConfig
from medpipe.imaging.preprocessing import Preprocessing
from medpipe.settings import Settings

log = logging.getLogger(__name__)


class _DropLitLoggerTip(logging.Filter):
    """Lightning logs a LitLogger advert (rank_zero_info) for every Trainer without one; we log to MLflow."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


_TIP_FILTER = _DropLitLoggerTip()


def quiet_lightning() -> None:
    """Drop Lightning's noise from this process's output (idempotent; called when a fit starts, not at import)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if _TIP_FILTER not in logger.filters:
            logger.addFilter(_TIP_FILTER)
    # Lightning 2.6's own pytree helper builds torch's deprecated LeafSpec (torch >= 2.10): harmless, on every fit
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )  # fmt: skip


@dataclass
class FitOutcome:
    """What :func:`fit` hands back to train_model, a search trial or a fold."""

    module: ClassifierModule
    factory_kwargs: dict[str, Any]
    preprocessing: Preprocessing
    best_value: float  # best val_auc over the epochs
    val_metrics: dict[str, float]  # val metrics (no prefix) of the best epoch
    checkpoint: Path | None = None
    artifacts: list[Path] = field(default_factory=list)


def train_image_size(t: TrainConfig, prepared: PreparedData) -> int:
    """The side images are trained at: ``train.image_size``, or the prepared data's own."""
    return t.image_size or prepared.image_size


def load_splits(prepared: PreparedData, t: TrainConfig | None = None) -> dict[str, Split | StreamedSplit]:
    """The splits in memory, or streamed from shards above ``t.stream_above_mb`` (never without ``t``)."""
    return streaming.load_splits(prepared, t.stream_above_mb if t is not None else float("inf"))


def run_params(cfg: TrainingConfig, prepared: PreparedData) -> dict[str, Any]:
    """Flat params of a training run: model/train/augment sections + the data it saw."""
    dumped = cfg.model_dump(mode="json")
    params: dict[str, Any] = flat_params({k: dumped[k] for k in ("model", "train", "augment")})
    params.update(
        {
            "data.source": cfg.data.source,
            "data.image_size": prepared.image_size,
            "data.version": prepared.data_version or "unknown",
            "train.image_size_effective": train_image_size(cfg.train, prepared),
            "train.precision_effective": resolve_precision(cfg.train),
        }
    )
    return params


def _unprefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {k.removeprefix(prefix): float(v) for k, v in metrics.items() if k.startswith(prefix)}


# --- the engine ----------------------------------------------------------------------------------


def fit(
    cfg: TrainingConfig,
    prepared: PreparedData,
    settings: Settings,
    splits: dict[str, Split | StreamedSplit],
    *,
    client: Any = None,
    run_id: str | None = None,
    ckpt_dir: Path | None = None,
    callbacks: list[L.Callback] | None = None,
    work_dir: Path | None = None,
) -> FitOutcome:
    """Train ``cfg`` on ``splits`` (train/val[/test]); log to ``run_id`` when given.

    With ``ckpt_dir`` the best/last checkpoints go there and a rerun resumes from ``last.ckpt``.
    """
    quiet_lightning()
    t, gpu = cfg.train, use_gpu(cfg.train)
    if t.cpu_threads and not gpu:
        torch.set_num_threads(t.cpu_threads)  # 2+ threads on an oversubscribed box spin and run several x slower
    L.seed_everything(t.seed, workers=True, verbose=False)
    train = splits["train"]
    k = prepared.num_classes
    streamed = isinstance(train, StreamedSplit)
    mean, std = pixel_stats(train.index, "train") if isinstance(train, StreamedSplit) else channel_stats(train.images)
    size = train_image_size(t, prepared)
    net, kwargs, skipped = build_model(cfg.model, num_classes=k, in_channels=prepared.channels, settings=settings)
    channels_last = t.channels_last and gpu
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    if t.compile:
        net.compile()  # in place: state_dict keys stay those of the plain Classifier

    weights = class_weights(train.labels, k)
    augment = BatchAugment(cfg.augment, seed=t.seed)
    loader = LoaderSettings(
        batch_size=t.batch_size,
        train_size=size,
        sampler="weighted" if t.imbalance == "weighted_sampler" and not streamed else "shuffle",
        seed=t.seed,
        device="cuda" if gpu else "cpu",
    )
    data_kw = {"mean": mean, "std": std, "augment": augment, "sample_weights": weights}
    dm = (
        StreamingDataModule(splits, loader, t.num_workers, **data_kw)  # type: ignore[arg-type]
        if streamed
        else InMemoryDataModule(splits, loader, **data_kw)  # type: ignore[arg-type]
    )
    optim = OptimSettings(
        lr=t.lr,
        weight_decay=t.weight_decay,
        optimizer=t.optimizer,
        scheduler=t.scheduler,
        epochs=t.epochs,
        freeze_backbone_epochs=cfg.model.freeze_backbone_epochs,
        channels_last=channels_last,
    )
    module = ClassifierModule(
        kwargs, k, asdict(optim), weights if t.imbalance == "weighted_loss" else None, net=net, augment=augment
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
        tta=t.tta,
    )

    work_dir = Path(work_dir or tempfile.mkdtemp(prefix="medpipe-fit-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    artifacts = [_preview(dm, train, work_dir / "augmentation_preview.png", cfg.augment, seed=t.seed + 1)]
    if client is not None and run_id:
        ml.set_tags(
            client,
            run_id,
            {
                "medpipe.imbalance": t.imbalance,
                "medpipe.loader": "streamed" if streamed else "in-memory",  # train.stream_above_mb chose it
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
        enable_progress_bar=False,  # one line per epoch instead (EpochProgress), piped or not
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(work_dir),
    )
    resume = ckpt_dir is not None and (Path(ckpt_dir) / "last.ckpt").is_file()
    if resume:
        last = Path(ckpt_dir) / "last.ckpt"
        epoch = torch.load(last, map_location="cpu", weights_only=True).get("epoch", -1)  # tensors and plain data
        log.info("resuming from %s (epoch %s)", last, epoch)
        if client is not None and run_id:
            ml.set_tags(client, run_id, {"medpipe.resumed_from_epoch": str(epoch)})
    # weights_only: a checkpoint is tensors and plain data; never unpickle code from a file on disk
    trainer.fit(module, datamodule=dm, ckpt_path="last" if resume else None, weights_only=True)
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
        best = str(out.checkpoint)
        val = trainer.validate(module, datamodule=dm, ckpt_path=best, verbose=False, weights_only=True)[0]
        out.val_metrics = _unprefixed(val, "val_")
        out.best_value = out.val_metrics.get("auc", out.best_value)
    return out


def _preview(dm: InMemoryDataModule, train: Split | StreamedSplit, path: Path, a: AugmentConfig, *, seed: int) -> Path:
    """Augmentation preview grid: the first 8 training images before/after (generator ``seed``, independent of
    training's)."""
    n = min(8, len(train))
    first = train.head(n) if isinstance(train, StreamedSplit) else train.images[:n]
    raw = torch.from_numpy(np.ascontiguousarray(first.transpose(0, 3, 1, 2)))
    from components.models.inference import resize

    before = resize(raw.float() / 255.0, dm.loader.train_size)
    after = BatchAugment(a, seed=seed)(before.clone())
    title = (
        f"hflip {a.hflip} vflip {a.vflip} rot {a.rotate_degrees:g} trans {a.translate:g} scale {a.scale:g} "
        f"bright {a.brightness:g} contr {a.contrast:g} crop {a.random_resized_crop:g} mixup {a.mixup_alpha:g}"
    )
    return plots.augmentation_preview(before.numpy(), after.numpy(), path, title)
