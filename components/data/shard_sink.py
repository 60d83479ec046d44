"""Where ``prepare`` puts converted images: straight into shards, decoding only what is new.

:class:`ShardSink` receives images one at a time while a source is read, so memory holds one image
(plus per-image metadata), never the dataset. An image whose source bytes (its key) are already in a
previous prepared folder made under the same :func:`conform_key` is not decoded again: its old shard
is carried over unchanged. :func:`decode_files` decodes the new files in a process pool.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from components.data import shards as sh
from medpipe import imaging

DECODE_VERSION = "medpipe.imaging/1"  # bump when decoding or conversion changes the pixels it makes
_CHUNK = 256  # files decoded per round trip to the pool: bounds the pixels in flight
_MIN_POOL = 64  # fewer new files than this decode inline (a pool costs more than it saves)


def conform_key(image_size: int, channels: int, policy: dict[str, Any]) -> dict[str, Any]:
    """What the stored pixels depend on besides the source bytes (``policy``: the data.decode params)."""
    return {"decoder": DECODE_VERSION, "policy": policy, "image_size": image_size, "channels": channels}


class ShardSink:
    """Collects ``(key, pixels)`` into new shards of ``out_dir``; reuses ``previous`` (an index from
    :func:`~components.data.shards.reusable`) for keys it already holds."""

    def __init__(self, out_dir: Path, conform: dict[str, Any], previous: tuple[Path, sh.ShardIndex] | None) -> None:
        self.out_dir, self.conform = Path(out_dir), conform
        self.writer = sh.ShardWriter(self.out_dir)
        self.items: dict[str, dict[str, Any]] = {}
        self.decoded = 0
        self._prev_dir, self._prev = previous if previous else (None, None)
        self._prev_shard = self._prev.shard_of() if self._prev else {}
        self._carried: set[int] = set()

    def known(self, key: str) -> bool:
        """True when ``key`` needs no decoding (stored earlier in this run or in the previous version)."""
        if key in self.items:
            return True
        if key in self._prev_shard and self._prev is not None and not self._prev.items[key].get("patient"):
            # (a DICOM image's patient key is never stored: such files are decoded again to group them)
            self._carried.add(self._prev_shard[key])
            self.items[key] = self._prev.items[key]
            return True
        return False

    def add(self, key: str, pixels: np.ndarray, size: tuple[int, int], patient: str | None = None) -> None:
        """Store one image; ``size`` is its original (width, height), ``patient`` whether it had one."""
        if key in self.items:
            return
        self.writer.write(key, pixels)
        self.decoded += 1
        item = {"size": list(size), "sha256": hashlib.sha256(pixels.tobytes()).hexdigest(), **sh.item_stats(pixels)}
        if patient is not None:
            item["patient"] = True
        self.items[key] = item

    def finish(self, splits: dict[str, tuple[Sequence[str], Sequence[int]]]) -> sh.ShardIndex:
        """Seal the last shard, carry over the used old shards, and write ``index.json``."""
        shards = []
        if self._prev is not None and self._prev_dir is not None:
            shards = [self._prev.shards[i] for i in sorted(self._carried)]
            sh.carry_over(shards, self._prev_dir, self.out_dir)
        shards = shards + self.writer.close()
        live = {k for s in shards for k in s["keys"]}
        index = sh.ShardIndex(
            conform=self.conform,
            shards=shards,
            items={k: v for k, v in self.items.items() if k in live},
            splits={s: {"keys": list(k), "labels": [int(x) for x in y]} for s, (k, y) in splits.items()},
        )
        sh.write_index(self.out_dir, index)
        return index

    @property
    def reused(self) -> int:
        return len(self.items) - self.decoded


def previous_index(candidates: Iterable[Path], conform: dict[str, Any]) -> tuple[Path, sh.ShardIndex] | None:
    """The first candidate prepared folder whose shards can be reused under ``conform``."""
    for folder in candidates:
        index = sh.reusable(Path(folder), conform)
        if index is not None:
            return Path(folder), index
    return None


def _decode_file(job: tuple[Path, str, imaging.ImageSpec]) -> imaging.ModelImage | str:
    path, shown, spec = job
    try:
        return imaging.load_image(path.read_bytes(), shown, spec)
    except imaging.ImageError as err:
        return err.reason
    except OSError as err:
        return f"unreadable file ({err.strerror or err})"


def decode_files(
    files: Sequence[tuple[Path, str]], spec: imaging.ImageSpec, workers: int | None = None
) -> Iterator[imaging.ModelImage | str]:
    """Each ``(path, name in errors)`` through the imaging contract, in order: the model image, or the
    reason it is unusable. Decoded in ``workers`` processes (default: the usable cores), ``_CHUNK`` per
    worker in flight at a time."""
    jobs = [(path, shown, spec) for path, shown in files]
    workers = workers or len(os.sched_getaffinity(0))
    if workers <= 1 or len(jobs) < _MIN_POOL:
        yield from map(_decode_file, jobs)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:  # as DataLoader does
        for start in range(0, len(jobs), _CHUNK * workers):
            yield from pool.map(_decode_file, jobs[start : start + _CHUNK * workers], chunksize=16)
