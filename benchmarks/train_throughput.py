"""Training images/s: the Lightning pipeline (real data, on-device augmentation) vs a bare PyTorch loop on the
same model, resolution, batch, augmentation and precision, in the same process. Prints the ratio.

    uv run python benchmarks/train_throughput.py --model cnn --epochs 3 --batch-size 64
    uv run python benchmarks/train_throughput.py --model resnet18 --image-size 64 --epochs 5   # on a GPU

The first epoch is warm-up (cuDNN autotune, allocator) and is not timed; validation is off in both.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F

from components.data.dataset import Split
from components.models.registry import create_model
from components.training.augment import BatchAugment
from components.training.data import InMemoryDataModule, LoaderSettings, channel_stats
from components.training.module import ClassifierModule, OptimSettings
from medpipe.config import AugmentConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "breastmnist.npz"


class _Timer(L.Callback):
    def __init__(self) -> None:
        self.start: float | None = None
        self.images = 0

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            _sync()
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if self.start is not None:
            self.images += len(batch[1])

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        _sync()
        self.elapsed = time.perf_counter() - (self.start or time.perf_counter())


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _setup(args: argparse.Namespace, gpu: bool) -> tuple[InMemoryDataModule, torch.nn.Module]:
    with np.load(args.data) as npz:
        train = Split(npz["train_images"][..., None], npz["train_labels"].ravel().astype(np.int64))
    n = getattr(args, "n_images", None)
    if n:  # tile (or cut) the training split to n images so an epoch is long enough to time
        idx = np.resize(np.arange(len(train)), n)
        train = Split(train.images[idx], train.labels[idx])
    mean, std = channel_stats(train.images)
    dm = InMemoryDataModule(
        {"train": train},
        LoaderSettings(args.batch_size, args.image_size or 28, seed=0, device="cuda" if gpu else "cpu"),
        mean,
        std,
        BatchAugment(AugmentConfig(), seed=0),
    )
    torch.manual_seed(0)
    net = create_model(args.model, num_classes=2, in_channels=1, small_input=True, dropout=0.3)
    if gpu:
        net = net.to("cuda", memory_format=torch.channels_last)
    if getattr(args, "compile", False):
        net.compile()  # in place, as the training engine does with train.compile
    return dm, net


def bench_lightning(args: argparse.Namespace, gpu: bool, precision: str) -> float:
    dm, net = _setup(args, gpu)
    optim = OptimSettings(lr=1e-3, weight_decay=1e-4, scheduler="none", epochs=args.epochs, channels_last=gpu)
    kwargs = {"name": args.model, "num_classes": 2, "in_channels": 1, "small_input": True, "dropout": 0.3}
    module = ClassifierModule(kwargs, 2, dataclasses.asdict(optim), net=net)
    timer = _Timer()
    trainer = L.Trainer(
        max_epochs=args.epochs,
        accelerator="gpu" if gpu else "cpu",
        devices=1,
        precision=precision,
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(module, datamodule=dm)
    return timer.images / timer.elapsed


def bench_bare(args: argparse.Namespace, gpu: bool, precision: str) -> float:
    dm, net = _setup(args, gpu)
    dm.setup()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    dev = "cuda" if gpu else "cpu"
    amp = precision.startswith("bf16")
    net.train()
    images, start = 0, 0.0
    for epoch in range(args.epochs):
        if epoch == 1:
            _sync()
            start = time.perf_counter()
        for x_u8, y in dm.train_dataloader():
            x_u8, y = x_u8.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            x = dm.transform(x_u8, train=True)
            if gpu:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(net(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            if epoch >= 1:
                images += len(y)
    _sync()
    return images / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cnn")
    p.add_argument("--image-size", type=int, default=None, help="training resolution (default 28)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs + 1 warm-up epoch")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--n-images", type=int, default=None, help="tile the train split to this many images")
    p.add_argument("--compile", action="store_true", help="torch.compile the network in both loops")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available() and not args.cpu
    precision = "bf16-mixed" if gpu else "32-true"
    device = torch.cuda.get_device_name() if gpu else f"CPU ({torch.get_num_threads()} threads)"
    # alternate to share any drift in machine load between the two
    bare1 = bench_bare(args, gpu, precision)
    light = bench_lightning(args, gpu, precision)
    bare2 = bench_bare(args, gpu, precision)
    bare = (bare1 + bare2) / 2
    print(
        f"device={device} model={args.model} size={args.image_size or 28} batch={args.batch_size} "
        f"precision={precision} timed_epochs={args.epochs - 1}"
    )
    print(f"bare PyTorch loop : {bare:10.1f} images/s  (runs: {bare1:.1f}, {bare2:.1f})")
    print(f"Lightning pipeline: {light:10.1f} images/s")
    print(f"ratio Lightning/bare: {light / bare:.3f}")


if __name__ == "__main__":
    main()
