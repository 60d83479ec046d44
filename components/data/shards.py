"""The prepared images as content-addressed WebDataset shards (the format that streams).

Layout inside a prepared folder::

    shards/<sha256>.tar   # WebDataset tar: one ``<key>.npy`` member per image (uint8 (H, W, C))
    index.json            # which keys each shard holds, each key's source size and pixel sums,
                          # and the (key, label) list of every split

A key is the sha256 of the image's source bytes, so an image is stored once whatever its label or
split; labels and splits live only in ``index.json``. A shard's file name is the sha256 of its bytes:
a shard that a new version carries over unchanged has the same name and the same DVC md5, so DVC
stores it once across versions. Prepare appends new images to new shards and carries old shards over
(:func:`reusable`), which is what makes both the versioning and the prepare incremental.

Readers never hold more than one shard member at a time: :func:`read_split` fills one preallocated
array (the in-memory path) and :func:`iter_items` streams one worker's share of a split.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tarfile
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medpipe.errors import DataError

INDEX = "index.json"
SHARDS_DIR = "shards"
FORMAT = "medpipe-shards/1"
SHARD_BYTES = 64 * 1024 * 1024  # a new shard starts past this size: DDP ranks and workers split by shard
_MTIME = 0  # fixed tar member times: the same images always give the same shard bytes (an int: a float
# mtime makes tarfile add a PAX header, 512 bytes and ~0.4 ms more per image)


@dataclass
class ShardIndex:
    """What ``index.json`` holds. ``conform`` is the decode policy + size + channels the pixels were made
    with: shards are reused by a later prepare only under an equal ``conform``."""

    conform: dict[str, Any]
    shards: list[dict[str, Any]] = field(default_factory=list)  # {"file", "keys"}
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> {"size": [w, h], "sum", "sumsq"}
    splits: dict[str, dict[str, list]] = field(default_factory=dict)  # split -> {"keys": [...], "labels": [...]}

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "conform": self.conform, "shards": self.shards, "items": self.items,
                "splits": self.splits}  # fmt: skip

    def shard_of(self) -> dict[str, int]:
        return {k: i for i, s in enumerate(self.shards) for k in s["keys"]}

    def split_labels(self, split: str) -> np.ndarray:
        return np.asarray(self.splits.get(split, {}).get("labels", []), dtype=np.int64)


def has_shards(prepared_dir: Path) -> bool:
    return (Path(prepared_dir) / INDEX).is_file()


def read_index(prepared_dir: Path) -> ShardIndex:
    path = Path(prepared_dir) / INDEX
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} is missing: {prepared_dir} is not a sharded prepared dataset") from None
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable shard index ({err}); run `medpipe data ingest` again") from None
    if doc.get("format") != FORMAT:
        raise DataError(f"{path}: shard format {doc.get('format')!r} is not {FORMAT!r}; prepare the data again")
    return ShardIndex(conform=doc["conform"], shards=doc["shards"], items=doc["items"], splits=doc["splits"])


def write_index(prepared_dir: Path, index: ShardIndex) -> None:
    (Path(prepared_dir) / INDEX).write_text(json.dumps(index.to_json(), sort_keys=True, separators=(",", ":")))


def image_key(data: bytes) -> str:
    """The content address of one image: sha256 of its source bytes (40 hex digits are plenty)."""
    return hashlib.sha256(data).hexdigest()[:40]


# --- writing ---------------------------------------------------------------------------------
class ShardWriter:
    """Append images to size-capped tars in ``out_dir/shards``; each closed tar is renamed to its sha256.

    The members are WebDataset's layout (``<key>.npy``, plain ustar headers), written with the standard
    library's ``tarfile``: importing ``webdataset`` imports torch (seconds per process), which prepare does
    not otherwise need. Every member of a shard has the same shape, so the ``.npy`` header is made once."""

    def __init__(self, out_dir: Path, max_bytes: int | None = None) -> None:
        self.dir = Path(out_dir) / SHARDS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes or SHARD_BYTES
        self.shards: list[dict[str, Any]] = []
        self._tmp: Path | None = None
        self._file: io.BufferedWriter | None = None
        self._tar: tarfile.TarFile | None = None
        self._keys: list[str] = []
        self._bytes = 0

    def write(self, key: str, pixels: np.ndarray) -> None:
        if self._tar is None:
            self._tmp = self.dir / f".tmp-{uuid.uuid4().hex}.tar"
            self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in _close_tar
            self._tar = tarfile.open(fileobj=self._file, mode="w|", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        data = _npy_header(pixels.shape) + pixels.tobytes()  # what np.save writes, without its per-call cost
        member = tarfile.TarInfo(f"{key}.npy")
        member.size, member.mtime, member.mode = len(data), _MTIME, 0o444
        member.uname = member.gname = "medpipe"
        self._tar.addfile(member, io.BytesIO(data))
        self._keys.append(key)
        self._bytes += len(data) + 1024
        if self._bytes >= self.max_bytes:
            self._seal()

    def discard(self) -> None:
        """Drop the shard being written (prepare failed; the folder is thrown away)."""
        self._close_tar()
        self._tar, self._tmp, self._keys, self._bytes = None, None, [], 0

    def _close_tar(self) -> None:
        if self._tar is not None:
            self._tar.close()
        if self._file is not None:
            self._file.close()
        self._file = None

    def close(self) -> list[dict[str, Any]]:
        self._seal()
        return self.shards

    def _seal(self) -> None:
        if self._tar is None or self._tmp is None:
            return
        self._close_tar()
        name = f"{_sha256_file(self._tmp)}.tar"
        self._tmp.rename(self.dir / name)
        self.shards.append({"file": f"{SHARDS_DIR}/{name}", "keys": self._keys})
        self._tar, self._tmp, self._keys, self._bytes = None, None, [], 0


@functools.lru_cache(maxsize=8)
def _npy_header(shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|u1", "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def carry_over(shards: Sequence[dict[str, Any]], src_dir: Path, out_dir: Path) -> None:
    """Put ``shards`` of ``src_dir`` into ``out_dir`` (hard links where possible: no bytes copied)."""
    (Path(out_dir) / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
    for shard in shards:
        src, dst = Path(src_dir) / shard["file"], Path(out_dir) / shard["file"]
        if dst.exists():
            continue
        try:
            os.link(src, dst)
        except OSError:
            import shutil

            shutil.copyfile(src, dst)


def reusable(prepared_dir: Path, conform: dict[str, Any]) -> ShardIndex | None:
    """The index of a previous prepared folder whose shards can be carried over (same ``conform``), with
    only the shards whose bytes still match their name; None when there is nothing to reuse."""
    if not has_shards(prepared_dir):
        return None
    try:
        index = read_index(prepared_dir)
    except DataError:
        return None
    if index.conform != conform:
        return None
    good = [s for s in index.shards if _intact(Path(prepared_dir) / s["file"])]
    index.shards = good
    return index if good else None


def _intact(path: Path) -> bool:
    return path.is_file() and _sha256_file(path) == path.stem


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify(prepared_dir: Path, index: ShardIndex | None = None) -> None:
    """Check every shard a split uses exists and still hashes to its name; the error names the shard."""
    index = index or read_index(prepared_dir)
    for shard in index.shards:
        path = Path(prepared_dir) / shard["file"]
        if not path.is_file():
            raise DataError(
                f"shard {path} is missing from the prepared data; restore it with `medpipe data pull` "
                "(or `dvc checkout`), or run `medpipe data ingest` again"
            )
        if _sha256_file(path) != path.stem:
            raise DataError(
                f"shard {path} is corrupt (its sha256 no longer matches its name); restore it with "
                "`medpipe data pull` (or `dvc checkout`), or run `medpipe data ingest` again"
            )


# --- reading ---------------------------------------------------------------------------------
def _decode(key: str, data: bytes, url: str, shape: tuple[int, ...] | None) -> np.ndarray:
    """The pixels of one ``.npy`` member. With the ``shape`` every image of a prepared folder has, the
    uint8 payload is the tail of the member (no header parse: ~10x faster on small images)."""
    if shape is not None:
        n = int(np.prod(shape))
        if len(data) > n and data[:6] == b"\x93NUMPY":
            return np.frombuffer(data, dtype=np.uint8, count=n, offset=len(data) - n).reshape(shape)
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"shard {url}: member {key!r} is not a readable image ({err})") from None


def iter_shard(
    path: Path, wanted: set[str] | None = None, shape: tuple[int, ...] | None = None
) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, pixels)`` of one shard, in order; keys not in ``wanted`` are skipped without decoding."""
    url = str(path)
    if not path.is_file():
        raise DataError(
            f"shard {url} is missing from the prepared data; restore it with `medpipe data pull` "
            "(or `dvc checkout`), or run `medpipe data ingest` again"
        )
    try:
        with open(path, "rb") as stream:
            for name, data in _members(stream):
                key = name.rsplit(".", 1)[0]
                if wanted is None or key in wanted:
                    yield key, _decode(key, data, url, shape)
    except (tarfile.TarError, OSError, ValueError, EOFError) as err:
        raise DataError(f"shard {url} is corrupt or truncated ({err}); restore it with `medpipe data pull`") from None


_BLOCK = 512


def _members(stream: io.BufferedReader) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of each member. Shards written by :class:`ShardWriter` hold plain ustar headers of
    regular files only: those are read directly (tarfile's header parsing was ~70% of a small image's read
    cost); anything else (shards from before, with PAX headers) goes through WebDataset's tar iterator."""
    first = stream.peek(_BLOCK)[:_BLOCK]
    if len(first) == _BLOCK and (first[257:262] != b"ustar" or first[156:157] not in (b"0", b"\0")):
        from webdataset.handlers import reraise_exception  # (imports torch: readers are DataLoader workers)
        from webdataset.tariterators import tar_file_iterator

        for member in tar_file_iterator(stream, handler=reraise_exception):
            yield member["fname"], member["data"]
        return
    while True:
        header = stream.read(_BLOCK)
        if len(header) < _BLOCK:
            raise EOFError("the archive ends before its end-of-archive marker")
        if header == bytes(_BLOCK):
            return
        if header[156:157] not in (b"0", b"\0"):
            raise tarfile.HeaderError(f"member type {header[156:157]!r} is not a regular file")
        name = header[:100].split(b"\0", 1)[0].decode()
        size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        data = stream.read(size)
        if len(data) < size:
            raise EOFError(f"member {name!r} is cut short")
        stream.read(-size % _BLOCK)
        yield name, data


def read_split(prepared_dir: Path, split: str, index: ShardIndex | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The whole split in memory: uint8 (N, H, W, C) images in index order, int64 (N,) labels."""
    index = index or read_index(prepared_dir)
    entry = index.splits.get(split, {"keys": [], "labels": []})
    keys = entry["keys"]
    size, channels = int(index.conform["image_size"]), int(index.conform["channels"])
    images = np.empty((len(keys), size, size, channels), dtype=np.uint8)
    positions: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        positions[key].append(i)
    shard_of = index.shard_of()
    missing = [k for k in positions if k not in shard_of]
    if missing:
        raise DataError(f"{prepared_dir}/{INDEX}: {len(missing)} image(s) of split {split!r} are in no shard")
    for si in sorted({shard_of[k] for k in positions}):
        path = Path(prepared_dir) / index.shards[si]["file"]
        for key, pixels in iter_shard(path, set(index.shards[si]["keys"]) & positions.keys(), images.shape[1:]):
            images[positions[key]] = pixels
    return images, index.split_labels(split)


def split_items(index: ShardIndex, split: str) -> list[tuple[int, str, int]]:
    """``(shard, key, label)`` of a split in storage order (shard by shard), the order streams read in."""
    shard_of = index.shard_of()
    entry = index.splits.get(split, {"keys": [], "labels": []})
    order = {k: j for s in index.shards for j, k in enumerate(s["keys"])}
    items = [(shard_of[k], k, int(label)) for k, label in zip(entry["keys"], entry["labels"], strict=True)]
    return sorted(items, key=lambda it: (it[0], order[it[1]]))


def share(items: Sequence[Any], part: int, parts: int) -> Sequence[Any]:
    """The ``part``-th of ``parts`` contiguous, near-equal slices of ``items`` (storage order kept, so
    each part reads its own shards)."""
    n = len(items)
    return items[part * n // parts : (part + 1) * n // parts]


def iter_items(
    prepared_dir: Path, index: ShardIndex, items: Sequence[tuple[int, str, int]]
) -> Iterator[tuple[np.ndarray, int]]:
    """Stream ``(pixels, label)`` for ``items`` (from :func:`split_items`/:func:`share`), shard by shard."""
    size, channels = int(index.conform["image_size"]), int(index.conform["channels"])
    shape = (size, size, channels)
    by_shard: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for shard, key, label in items:
        by_shard[shard][key].append(label)
    for shard, wanted in by_shard.items():
        for key, pixels in iter_shard(Path(prepared_dir) / index.shards[shard]["file"], set(wanted), shape):
            for label in wanted[key]:
                yield pixels, label


def pixel_stats(index: ShardIndex, split: str) -> tuple[list[float], list[float]]:
    """Per-channel mean/std (0..1 scale) of a split from the per-image sums in the index (no pixels read)."""
    keys = index.splits.get(split, {}).get("keys", [])
    if not keys:
        raise DataError(f"split {split!r} has no images")
    sums = np.asarray([index.items[k]["sum"] for k in keys], dtype=np.float64).sum(axis=0)
    sumsq = np.asarray([index.items[k]["sumsq"] for k in keys], dtype=np.float64).sum(axis=0)
    size = int(index.conform["image_size"])
    n = len(keys) * size * size
    mean = sums / n / 255.0
    var = np.maximum(sumsq / n / 255.0**2 - mean**2, 0.0)
    return mean.tolist(), np.maximum(np.sqrt(var), 1e-6).tolist()


def item_stats(pixels: np.ndarray) -> dict[str, list[float]]:
    """Per-channel pixel sum and sum of squares of one (H, W, C) uint8 image (for :func:`pixel_stats`)."""
    flat = pixels.reshape(-1, pixels.shape[-1]).astype(np.uint32)
    return {
        "sum": flat.sum(axis=0, dtype=np.uint64).tolist(),
        "sumsq": (flat * flat).sum(axis=0, dtype=np.uint64).tolist(),
    }
