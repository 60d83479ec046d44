"""Fixed-size batches of one prepared split: the one way every stage that touches all images reads them.

The drift reference, the gate's evaluation, the operating point, the parity check and the int8 calibration
read a split through :func:`split_batches` instead of loading it whole: memory is one batch of pixels
(plus one shard member), whatever the split's size.

Sharded data streams shard by shard (storage order). Each :class:`Batch` carries ``positions``, the
images' places in the split's index order (the order of ``load_split`` and of the manifest's per-image
attributes), so a consumer writes its per-image results (probabilities, features) back in index order
and gets exactly the arrays the in-memory path gives. Older ``.npz`` splits (in memory) and arrays
already in memory (:func:`array_batches`) are cut into the same batches in index order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.data import shards
from components.data.dataset import load_split
from medpipe.errors import DataError

BATCH = 256


@dataclass(frozen=True)
class Batch:
    images: np.ndarray  # uint8 (n, H, W, C)
    labels: np.ndarray  # int64 (n,)
    positions: np.ndarray  # int64 (n,): each image's place in the split's index order


@dataclass(frozen=True)
class SplitBatches:
    """An iterable of :class:`Batch` over one split (iterate it as often as needed); its labels and image
    shape are known without reading pixels."""

    labels: np.ndarray  # int64 (N,) in index order
    image_shape: tuple[int, int, int]  # (H, W, C)
    batch_size: int
    _prepared_dir: Path | None = None
    _split: str = ""
    _images: np.ndarray | None = None  # in-memory source (array_batches, .npz splits)

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[Batch]:
        if self._images is not None:
            for start in range(0, len(self.labels), self.batch_size):
                stop = min(start + self.batch_size, len(self.labels))
                yield Batch(self._images[start:stop], self.labels[start:stop], np.arange(start, stop, dtype=np.int64))
            return
        assert self._prepared_dir is not None
        yield from _stream(self._prepared_dir, self._split, len(self.labels), self.image_shape, self.batch_size)

    def scatter(self, outputs: Iterator[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Per-image results ``(positions, values)`` (one pair per batch) -> one array in index order."""
        out: np.ndarray | None = None
        for positions, values in outputs:
            values = np.asarray(values)
            if out is None:
                out = np.zeros((len(self), *values.shape[1:]), dtype=values.dtype)
            out[positions] = values
        return out if out is not None else np.zeros((0,))


def array_batches(images: np.ndarray, labels: np.ndarray | None = None, batch_size: int = BATCH) -> SplitBatches:
    """Batches of uint8 (N, H, W, C) images already in memory (labels default to zeros)."""
    labels = np.zeros(len(images), np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    return SplitBatches(labels, tuple(images.shape[1:]), batch_size, _images=images)  # type: ignore[arg-type]


def split_batches(prepared_dir: Path, split: str, batch_size: int = BATCH, limit: int | None = None) -> SplitBatches:
    """Batches of ``split`` of a prepared folder: streamed from its shards, or cut from an older ``.npz``
    split. ``limit``: only the first ``limit`` images in index order (e.g. a calibration sample)."""
    prepared_dir = Path(prepared_dir)
    if not shards.has_shards(prepared_dir):
        data = load_split(prepared_dir, split)
        return array_batches(data.images[:limit], data.labels[:limit], batch_size)
    index = shards.read_index(prepared_dir)
    labels = index.split_labels(split)[:limit]
    size, channels = int(index.conform["image_size"]), int(index.conform["channels"])
    return SplitBatches(labels, (size, size, channels), batch_size, prepared_dir, split)


def _stream(prepared_dir: Path, split: str, n: int, shape: tuple[int, int, int], batch_size: int) -> Iterator[Batch]:
    """Read the first ``n`` index positions of ``split`` shard by shard, ``batch_size`` images at a time."""
    index = shards.read_index(prepared_dir)
    entry = index.splits.get(split, {"keys": [], "labels": []})
    positions: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(entry["keys"][:n]):
        positions[key].append(i)
    labels = np.asarray(entry["labels"][:n], dtype=np.int64)
    shard_of = index.shard_of()
    missing = [k for k in positions if k not in shard_of]
    if missing:
        raise DataError(f"{prepared_dir}/{shards.INDEX}: {len(missing)} image(s) of split {split!r} are in no shard")
    images = np.empty((batch_size, *shape), dtype=np.uint8)
    places = np.empty(batch_size, dtype=np.int64)
    filled = 0
    for si in sorted({shard_of[k] for k in positions}):
        path = Path(prepared_dir) / index.shards[si]["file"]
        for key, pixels in shards.iter_shard(path, set(index.shards[si]["keys"]) & positions.keys(), shape):
            for place in positions[key]:
                images[filled], places[filled] = pixels, place
                filled += 1
                if filled == batch_size:
                    yield Batch(images.copy(), labels[places], places.copy())
                    filled = 0
    if filled:
        yield Batch(images[:filled].copy(), labels[places[:filled]], places[:filled].copy())
