"""The in-memory DataModule: whole splits as uint8 tensors on the training device, batches fetched by
index (no per-image Python work), then resize + augmentation + normalisation on the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler, SequentialSampler, WeightedRandomSampler

from components.data.dataset import Split
from components.models.inference import to_model_input
from components.training.augment import BatchAugment


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean/std on the 0..1 scale of uint8 (N, H, W, C) images (the training set's)."""
    x = images.reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
    std = np.maximum(x.std(axis=0), 1e-6)
    return x.mean(axis=0).tolist(), std.tolist()


def class_weights(labels: np.ndarray, num_classes: int) -> list[float]:
    """Inverse-frequency weights N / (K * n_k), 1 on average; absent classes get 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    w = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 0.0)
    return w.tolist()


class _BatchView(torch.utils.data.Dataset):
    """``dataset[list_of_indices]`` -> a whole batch (images uint8 (B, C, H, W), labels (B,))."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(idx, device=self.images.device)
        return self.images[index], self.labels[index]


@dataclass(frozen=True)
class LoaderSettings:
    batch_size: int
    train_size: int  # network input resolution
    sampler: str = "shuffle"  # shuffle | weighted
    seed: int = 0
    device: str = "cpu"  # where the tensors live ("cuda" keeps the data on the GPU)


class InMemoryDataModule(L.LightningDataModule):
    """Train/val/test :class:`Split` arrays held once in memory; augmentation runs in
    ``on_after_batch_transfer`` on the device, only while training."""

    def __init__(
        self,
        splits: dict[str, Split],
        loader: LoaderSettings,
        mean: list[float],
        std: list[float],
        augment: BatchAugment | None,
        sample_weights: list[float] | None = None,
    ) -> None:
        super().__init__()
        self.splits, self.loader = splits, loader
        self.augment = augment
        self.class_sample_weights = sample_weights
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self._views: dict[str, _BatchView] = {}

    def setup(self, stage: str | None = None) -> None:
        dev = torch.device(self.loader.device)
        for name, split in self.splits.items():
            if name in self._views:
                continue
            images = torch.from_numpy(np.ascontiguousarray(split.images.transpose(0, 3, 1, 2))).to(dev)
            self._views[name] = _BatchView(images, torch.from_numpy(split.labels).to(dev))

    def _loader(self, name: str, train: bool) -> DataLoader:
        self.setup()
        view = self._views[name]
        base: Sampler[int]
        if train and self.loader.sampler == "weighted" and self.class_sample_weights is not None:
            per_sample = torch.tensor(self.class_sample_weights, dtype=torch.double)[view.labels.cpu()]
            gen = torch.Generator().manual_seed(self.loader.seed)
            base = WeightedRandomSampler(per_sample, num_samples=len(view), replacement=True, generator=gen)
        elif train:
            base = RandomSampler(view, generator=torch.Generator().manual_seed(self.loader.seed))
        else:
            base = SequentialSampler(view)
        drop_last = train and len(view) > self.loader.batch_size  # no size-1 batch into BatchNorm
        batches = BatchSampler(base, self.loader.batch_size, drop_last=drop_last)
        return DataLoader(view, sampler=batches, batch_size=None, num_workers=0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def transform(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 (N, C, H, W) (or float on the 0..1 scale, already resized by a streaming worker) -> float
        normalised (N, C, S, S) at the training resolution, through the exported graph's own to-model-input."""
        if images.dtype != torch.uint8:
            images = images * 255.0  # back to the raw pixel scale to_model_input (and the ONNX graph) takes
        augment = self.augment if train and self.augment is not None and self.augment.enabled else None
        mean, std = self.mean.to(images.device), self.std.to(images.device)
        return to_model_input(images, self.loader.train_size, mean, std, augment)

    def on_after_batch_transfer(self, batch: tuple[torch.Tensor, torch.Tensor], dataloader_idx: int):
        images, labels = batch
        training = self.trainer is not None and self.trainer.training
        return self.transform(images, train=training), labels
