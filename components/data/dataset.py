"""The canonical prepared dataset on disk, shared by every later stage.

Layout of a prepared folder::

    prepared/
      shards/<sha256>.tar  index.json  # the images, content-addressed (see components.data.shards)
      manifest.json                    # class names, counts per split, per-image sha256, source fingerprint

Folders prepared before the sharded format hold ``train.npz val.npz test.npz`` instead (images uint8
(N, H, W, C), labels int64 (N,)); :func:`load_split` reads both, so older data versions still load.
Small (MedMNIST-sized) datasets load whole into memory; large ones stream (``components.training.streaming``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medpipe.imaging.policy import DecodePolicy

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (N, H, W, C)
    labels: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class PreparedData:
    """What the prepare stage hands on: where the data is and what is in it."""

    path: Path
    class_names: tuple[str, ...]
    counts: dict[str, dict[str, int]]  # split -> class name -> count
    image_size: int
    channels: int
    data_version: str | None = None  # DVC md5 of the prepared folder, once versioned
    decode: DecodePolicy = DecodePolicy()  # how the files became pixels (goes into the model's preprocessing)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def load_split(prepared_dir: Path, split: str) -> Split:
    """Load one split of a prepared folder into memory."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    from components.data import shards

    if shards.has_shards(prepared_dir):
        images, labels = shards.read_split(Path(prepared_dir), split)
        return Split(images=images, labels=labels)
    path = Path(prepared_dir) / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"prepared split {path} is missing; run `medpipe data ingest` (or `dvc repro prepare`)")
    with np.load(path) as npz:
        return Split(images=npz["images"], labels=npz["labels"].astype(np.int64))


def split_fingerprint(prepared_dir: Path, split: str) -> str:
    """``<folder>/<split> sha256:<digest>``: names exactly which images and labels a split holds (the
    gate records it beside a decision)."""
    import hashlib

    from components.data import shards

    folder = Path(prepared_dir)
    if shards.has_shards(folder):
        index = shards.read_index(folder)
        blob = json.dumps({"conform": index.conform, "split": index.splits.get(split)}, sort_keys=True)
        return f"{folder.name}/{split} sha256:{hashlib.sha256(blob.encode()).hexdigest()}"
    with open(folder / f"{split}.npz", "rb") as f:
        return f"{folder.name}/{split}.npz sha256:{hashlib.file_digest(f, 'sha256').hexdigest()}"


def read_manifest(prepared_dir: Path) -> dict[str, Any]:
    path = Path(prepared_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {prepared_dir} is not a prepared dataset")
    return json.loads(path.read_text())


def load_prepared(prepared_dir: Path, data_version: str | None = None) -> PreparedData:
    """Describe a prepared folder from its manifest (arrays are loaded lazily with :func:`load_split`)."""
    m = read_manifest(prepared_dir)
    return PreparedData(
        path=Path(prepared_dir),
        class_names=tuple(m["class_names"]),
        counts=m["counts"],
        image_size=int(m["image_size"]),
        channels=int(m["channels"]),
        data_version=data_version or m.get("data_version"),
        decode=DecodePolicy.model_validate(m.get("params", {}).get("decode") or {}),
    )


def write_split(out_dir: Path, split: str, data: Split) -> None:
    """Write one split (uncompressed: loads fast, and DVC dedups by content anyway)."""
    if data.images.dtype != np.uint8 or data.images.ndim != 4:
        raise ValueError(f"{split}: images must be uint8 (N, H, W, C), got {data.images.dtype} {data.images.shape}")
    np.savez(Path(out_dir) / f"{split}.npz", images=data.images, labels=data.labels.astype(np.int64))


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    (Path(out_dir) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
