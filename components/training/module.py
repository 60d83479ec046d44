"""The LightningModule: a :class:`Classifier` plus the way it is trained and measured."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch.nn import functional as F

from components.models.artifacts import ENSEMBLE_KEY, build_model
from components.models.registry import Classifier
from components.training.augment import BatchAugment
from components.training.augment import mixup as mix
from medpipe.metrics import EPOCH_METRICS, epoch_metrics

METRIC_NAMES = EPOCH_METRICS


@dataclass(frozen=True)
class OptimSettings:
    lr: float
    weight_decay: float
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    epochs: int = 10
    freeze_backbone_epochs: int = 0
    channels_last: bool = False


class ClassifierModule(L.LightningModule):
    """The network ``model`` (:func:`create_model` arguments) describes, and how it is trained.

    ``save_hyperparameters`` records ``model``, ``num_classes``, ``optim`` and ``class_weights``, plain types only
    (checkpoints load with ``weights_only=True``), so ``ClassifierModule.load_from_checkpoint(path,
    weights_only=True)`` rebuilds the model from any checkpoint of a fit or from a model folder's ``model.ckpt``.
    ``net`` (the network with its initial weights, when training starts from some) and ``augment`` are not
    hyperparameters.
    """

    def __init__(
        self,
        model: dict[str, Any],
        num_classes: int | None = None,
        optim: dict[str, Any] | None = None,
        class_weights: list[float] | None = None,
        *,
        net: Classifier | None = None,
        augment: BatchAugment | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net", "augment"])
        first = model[ENSEMBLE_KEY][0] if ENSEMBLE_KEY in model else model
        self.num_classes = int(num_classes if num_classes is not None else first["num_classes"])
        self.optim = OptimSettings(**optim) if optim else OptimSettings(lr=0.0, weight_decay=0.0)
        self.net = net if net is not None else build_model(model)
        self.augment = augment
        self.register_buffer(
            "loss_weight", torch.tensor(class_weights, dtype=torch.float32) if class_weights else None, persistent=False
        )
        self.val_metrics = epoch_metrics(num_classes).clone(prefix="val_")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.optim.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    # --- staged unfreezing -------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        frozen = self.current_epoch < self.optim.freeze_backbone_epochs
        for p in self.net.backbone.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            self.net.backbone.eval()  # keep pretrained BatchNorm statistics while only the head learns

    # --- steps ---------------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        draw = self.augment.draw_mixup(len(y), x.device) if self.augment is not None else None
        if draw is not None:
            target = F.one_hot(y, self.num_classes).float()
            x, target = mix(x, target, *draw)
            logits = self(x)
            logp = F.log_softmax(logits.float(), dim=1)
            w = self.loss_weight if self.loss_weight is not None else torch.ones_like(logp[0])
            loss = -(target * logp * w).sum(1).mean()
        else:
            logits = self(x)
            loss = F.cross_entropy(logits.float(), y, weight=self.loss_weight)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x).float()
        self.log("val_loss", F.cross_entropy(logits, y), on_epoch=True, prog_bar=True, batch_size=len(y))
        self.val_metrics.update(logits.softmax(1), y)

    def on_validation_epoch_end(self) -> None:
        values = self.val_metrics.compute()
        self.log("val_auc", values.pop("val_auc"), prog_bar=True)
        self.log_dict(values)
        self.val_metrics.reset()

    # --- optimisation --------------------------------------------------------------------------
    def configure_optimizers(self):
        o = self.optim
        if o.optimizer == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=o.lr, momentum=0.9, weight_decay=o.weight_decay, nesterov=True)
        else:
            opt = torch.optim.AdamW(self.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        if o.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(o.epochs, 1))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if o.scheduler == "onecycle":
            total = int(self.trainer.estimated_stepping_batches)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=o.lr, total_steps=max(total, 1))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        return opt
