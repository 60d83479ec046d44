"""The streamed DataModule: shards read by DataLoader workers, for datasets too large for memory.

The split, its per-rank and per-worker shares and the shuffle buffer are
:mod:`components.training.shard_stream`'s; this module hands them to Lightning.
Augmentation and normalisation stay on the device, exactly as in the in-memory path
(:class:`~components.training.data.InMemoryDataModule`, whose transform this class inherits).
"""

from __future__ import annotations

from torch.utils.data import DataLoader

from components.training.data import InMemoryDataModule, LoaderSettings
from components.training.shard_stream import ShardStream, StreamedSplit, load_splits

__all__ = ["ShardStream", "StreamedSplit", "StreamingDataModule", "load_splits"]


class _EpochLoader(DataLoader):
    """A DataLoader that tells its :class:`ShardStream` which epoch starts (workers get a fresh copy)."""

    def __iter__(self):  # type: ignore[override]
        stream = self.dataset
        if isinstance(stream, ShardStream):
            stream.epoch += 1
        return super().__iter__()


class StreamingDataModule(InMemoryDataModule):
    """Like :class:`InMemoryDataModule` (same device transform), but batches come from shard workers."""

    def __init__(self, splits: dict[str, StreamedSplit], loader: LoaderSettings, num_workers: int, **kw) -> None:
        super().__init__(splits, loader, **kw)  # type: ignore[arg-type]
        self.num_workers = num_workers

    def setup(self, stage: str | None = None) -> None:
        """Nothing to load: workers read the shards."""

    def _loader(self, name: str, train: bool) -> DataLoader:
        split = self.splits[name]
        assert isinstance(split, StreamedSplit)
        stream = ShardStream(split, self.loader.train_size, train=train, seed=self.loader.seed)
        return _EpochLoader(
            stream,
            batch_size=self.loader.batch_size,
            drop_last=train and len(stream) > self.loader.batch_size,  # no size-1 batch into BatchNorm
            num_workers=self.num_workers,
            pin_memory=self.loader.device == "cuda",
            prefetch_factor=2 if self.num_workers else None,
        )
