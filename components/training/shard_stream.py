"""A split streamed from its shards, cut per DDP rank and DataLoader worker (no Lightning: a DDP rank or a
spawned DataLoader worker that unpickles a :class:`ShardStream` imports only torch and the shard reader).

Each epoch the split's shards are put in a seeded order (the same on every rank), the items are cut
into one contiguous share per DDP rank and one per DataLoader worker (so every rank and worker reads
its own shards), and each worker decodes and resizes its images and mixes them in a bounded shuffle
buffer. Memory is one shard member per worker plus that buffer, whatever the dataset size.

:func:`load_splits` picks the path: whole splits in memory up to ``train.stream_above_mb`` of decoded
pixels, streamed above it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from components.data import shards as sh
from components.data.dataset import SPLITS, PreparedData, Split, load_split
from components.models.inference import resize

SHUFFLE_BUFFER = 512  # images a worker mixes before yielding (per worker; at 512 px grey ~130 MB)


@dataclass(frozen=True)
class StreamedSplit:
    """A split left on disk: its labels (from the shard index) and where to stream its images from."""

    prepared_dir: Path
    index: sh.ShardIndex
    name: str

    @property
    def labels(self) -> np.ndarray:
        return self.index.split_labels(self.name)

    def __len__(self) -> int:
        return len(self.index.splits.get(self.name, {}).get("keys", []))

    def head(self, n: int) -> np.ndarray:
        """The first ``n`` images in storage order (uint8 (n, H, W, C)), e.g. for a preview."""
        items = sh.split_items(self.index, self.name)[:n]
        return np.stack([p for p, _ in sh.iter_items(self.prepared_dir, self.index, items)])


def decoded_mb(prepared: PreparedData) -> float:
    """Decoded pixels of all splits in MB (what the in-memory path would hold)."""
    n = sum(sum(c.values()) for c in prepared.counts.values())
    return n * prepared.image_size**2 * prepared.channels / 1e6


def load_splits(prepared: PreparedData, stream_above_mb: float) -> dict[str, Split | StreamedSplit]:
    """Every split in memory, or (sharded data over ``stream_above_mb`` decoded) as :class:`StreamedSplit`."""
    if sh.has_shards(prepared.path) and decoded_mb(prepared) > stream_above_mb:
        index = sh.read_index(prepared.path)
        sh.verify(prepared.path, index)  # a missing or corrupt shard fails here, named, before any training
        return {s: StreamedSplit(prepared.path, index, s) for s in SPLITS}
    return {s: load_split(prepared.path, s) for s in SPLITS}


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardStream(IterableDataset):
    """``(image, label)`` of one split for this rank and worker; ``image`` is uint8 (C, H, W) at the stored
    size, or float (C, S, S) on the 0..1 scale when resized to ``size`` in the worker.

    ``train``: a new seeded shard order each epoch, a shuffle buffer, and every rank cut to the same
    number of items (DDP steps in lockstep); otherwise storage order and every item exactly once."""

    def __init__(self, split: StreamedSplit, size: int, train: bool, seed: int) -> None:
        self.split, self.size, self.train, self.seed = split, size, train, seed
        self.epoch = 0
        self.rank, self.world = rank_and_world()

    def _share(self) -> list[tuple[int, str, int]]:
        items = sh.split_items(self.split.index, self.split.name)
        if self.train:
            order = list(range(len(self.split.index.shards)))
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
            rank_of = {s: i for i, s in enumerate(order)}
            items.sort(key=lambda it: rank_of[it[0]])
            items = items[: len(items) // self.world * self.world]  # equal shares: no rank waits on another
        mine = sh.share(items, self.rank, self.world)
        info = get_worker_info()
        return list(sh.share(mine, info.id, info.num_workers) if info else mine)

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.world if self.train else len(sh.share(range(n), self.rank, self.world))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        info = get_worker_info()
        rng = random.Random(hash((self.seed, self.epoch, self.rank, info.id if info else 0)))
        stream = (
            (self._to_tensor(p), y) for p, y in sh.iter_items(self.split.prepared_dir, self.split.index, self._share())
        )
        if not self.train:
            yield from stream
            return
        buffer: list[tuple[torch.Tensor, int]] = []
        for sample in stream:
            buffer.append(sample)
            if len(buffer) >= SHUFFLE_BUFFER:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer

    def _to_tensor(self, pixels: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        if x.shape[-1] == self.size:
            return x
        return resize(x[None].float() / 255.0, self.size)[0]  # the device path's resize, done in the worker
