"""Where this process trains: GPU or CPU, precision, and its rank in a distributed run (Lightning's own
environment detection and rank bookkeeping)."""

from __future__ import annotations

import torch
from lightning.fabric.plugins.environments import TorchElasticEnvironment
from lightning.fabric.utilities.rank_zero import rank_zero_only

from medpipe.config import TrainConfig


def use_gpu(t: TrainConfig) -> bool:
    return t.accelerator != "cpu" and torch.cuda.is_available()


def launched_by_torchrun() -> bool:
    """Whether torchrun (torchelastic) started this process as one rank of a distributed run."""
    return TorchElasticEnvironment.detect()


def world_size(t: TrainConfig) -> int:
    """Processes that train together: torchrun's world size, else
    devices x nodes when Lightning will launch DDP itself (several GPUs, or a ``ddp*`` strategy on CPU)."""
    if launched_by_torchrun():
        return TorchElasticEnvironment().world_size()
    gpu, ddp = use_gpu(t), t.strategy.startswith("ddp")
    if not (gpu or ddp):
        return 1
    devices = t.devices if isinstance(t.devices, int) else (torch.cuda.device_count() if gpu else 1)
    return max(devices, 1) * t.num_nodes


def is_rank_zero() -> bool:
    """True in the one process that owns MLflow logging and the model folder (always, when not distributed)."""
    return rank_zero_only.rank == 0


def resolve_precision(t: TrainConfig) -> str:
    """``auto``: bf16-mixed on a GPU, 32-true on CPU (16-mixed on CPU silently becomes bf16 and is slow)."""
    if t.precision != "auto":
        return t.precision
    return "bf16-mixed" if use_gpu(t) else "32-true"
