"""Collecting a source: every usable image decoded into the shard sink with its label, group and split, and
every problem found on the way (what :func:`components.data.prepare.prepare` validates and writes)."""

from __future__ import annotations

import hashlib
import logging
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from components.data import shards
from components.data.dataset import SPLITS
from components.data.shard_sink import ShardSink, decode_files
from components.data.sources import (
    DataSource,
    class_dirs,
    iter_class_files,
    read_csv_manifest,
    split_layout,
)
from medpipe import imaging
from medpipe.config import DataConfig
from medpipe.errors import DataError
from medpipe.imaging.dicom import patient_hash

log = logging.getLogger(__name__)


@dataclass
class Collected:
    """Every usable image of a source (its key; the pixels went to ``sink``), plus every problem found."""

    class_names: tuple[str, ...]
    sink: ShardSink
    keys: list[str] = field(default_factory=list)  # content address of each image (see components.data.shards)
    labels: list[int] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)  # where the image came from, relative to the source
    groups: list[str | None] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
    attributes: list[dict[str, str]] = field(default_factory=list)  # CSV attribute columns per image ({} elsewhere)
    sizes: list[tuple[int, int]] = field(default_factory=list)  # original (width, height)
    shown: list[str] = field(default_factory=list)  # the file as named in error messages
    problems: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    fingerprint_lines: list[str] = field(default_factory=list)
    locations: dict[str, str] = field(default_factory=dict)  # class name -> where its images are
    keep_refs: bool = True

    def add(self, key: str, label: int, ref: str, shown: str, size: tuple[int, int], **kw: Any) -> None:
        self.keys.append(key)
        self.labels.append(label)
        self.refs.append(ref)
        self.shown.append(shown)
        self.sizes.append(size)
        self.groups.append(kw.get("group"))
        self.splits.append(kw.get("split"))
        self.attributes.append(kw.get("attributes") or {})


def collect(source: DataSource, cfg: DataConfig, sink: ShardSink, workers: int | None) -> Collected:
    if source.kind == "npz":
        return _collect_npz(source, cfg, sink)
    if source.kind == "imagefolder":
        return _collect_folder(source, cfg, sink, workers)
    return _collect_csv(source, cfg, sink, workers)


def _collect_npz(source: DataSource, cfg: DataConfig, sink: ShardSink) -> Collected:
    path = source.path
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: zero-byte file, not a .npz archive; download or copy it again")
    digest = _sha256_file(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"{path}: not a readable .npz archive ({err}); the file is corrupt or truncated") from None
    if {"train_images", "train_labels"} <= arrays.keys():
        parts = [(s, f"{s}_images", f"{s}_labels") for s in SPLITS if f"{s}_images" in arrays]
    elif {"images", "labels"} <= arrays.keys():
        parts = [(None, "images", "labels")]
    else:
        raise DataError(
            f"{path}: expected MedMNIST keys (train_images, train_labels, val_..., test_...) or images + labels "
            f"(+ optional groups); found {sorted(arrays)}"
        )
    all_labels = np.concatenate([_npz_labels(arrays, lk, path) for _, _, lk in parts])
    if all_labels.size == 0:
        raise DataError(f"{path}: contains no images")
    names = cfg.class_names or source.class_names or [str(i) for i in range(int(all_labels.max()) + 1)]
    out = Collected(class_names=tuple(names), sink=sink, keep_refs=False)
    out.fingerprint_lines.append(f"npz\t{digest}")
    groups_all = arrays.get("groups")
    for split, ik, lk in parts:
        images = _npz_images(arrays[ik], ik, path)
        labels = _npz_labels(arrays, lk, path)
        if len(images) != len(labels):
            raise DataError(f"{path}: {ik} has {len(images)} images but {lk} has {len(labels)} labels")
        groups = groups_all.astype(str) if groups_all is not None and split is None else None
        valid = (labels >= 0) & (labels < len(names))
        for i in np.flatnonzero(~valid):
            out.problems.append(
                (f"{path} [{lk}[{i}]]", f"label {int(labels[i])} is outside the class list {list(names)}")
            )
        converted = _conform_npz(images[valid], np.flatnonzero(valid), f"{path} [{ik}", cfg)
        size = (int(images.shape[2]), int(images.shape[1]))
        for j, i in enumerate(np.flatnonzero(valid)):
            ref = f"{ik}[{i}]"
            key = shards.image_key(images[i].tobytes() + repr((images[i].shape, images[i].dtype.str)).encode())
            if not sink.known(key):
                sink.add(key, converted[j], size)
            out.add(
                key,
                int(labels[i]),
                ref,
                f"{path} [{ref}]",
                size,
                split=split,
                group=None if groups is None else groups[i],
            )
    for i, name in enumerate(names):
        out.locations[name] = f"label {i} in {path}"
    return out


def _npz_labels(arrays: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    labels = arrays[key]
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise DataError(f"{path}: {key} has shape {labels.shape}: multi-label data is not supported (one label each)")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: {key} must hold integer class indices, got {labels.dtype}")
    return labels.reshape(-1).astype(np.int64)


def _npz_images(images: np.ndarray, key: str, path: Path) -> np.ndarray:
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        raise DataError(f"{path}: {key} has shape {images.shape}; expected (N, H, W) or (N, H, W, 1|3|4)")
    return images


def _conform_npz(images: np.ndarray, index: np.ndarray, shown: str, cfg: DataConfig) -> np.ndarray:
    """An (N, H, W[, C]) stack -> (N, S, S, C) model input, image by image as the imaging contract decodes
    an in-memory array (a stack of plain uint8 grey/RGB takes the vectorised path: same pixels, faster)."""
    if images.dtype == np.uint8 and (images.ndim == 3 or images.shape[-1] in (1, 3)):
        return imaging.conform_stack(images, cfg.image_size, cfg.channels)
    out = np.empty((len(images), cfg.image_size, cfg.image_size, cfg.channels), dtype=np.uint8)
    for j, (i, img) in enumerate(zip(index, images, strict=True)):
        try:
            decoded = imaging.from_array(img, f"{shown}[{i}]]", cfg.decode)
        except imaging.ImageError as err:
            raise DataError(str(err)) from None
        out[j] = imaging.conform(decoded.pixels, cfg.image_size, cfg.channels)
    return out


def _collect_folder(source: DataSource, cfg: DataConfig, sink: ShardSink, workers: int | None) -> Collected:
    root = source.path
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    layout = split_layout(root)
    parts = layout.items() if layout else [(None, root)]
    found = sorted({c for _, folder in parts for c in class_dirs(folder)})
    names = tuple(cfg.class_names or found)
    out = Collected(class_names=names, sink=sink)
    for name in names:
        out.locations[name] = str(root / name) if not layout else f"{root}/<split>/{name}"
    items = []
    for split, folder in parts:
        for cls, path in iter_class_files(folder):
            rel = path.relative_to(root).as_posix()
            items.append((path, rel, cls, str(path), {"split": split}))
    _decode_all(out, items, cfg, workers, where=lambda label: f"folder {root / label}")
    return out


def _collect_csv(source: DataSource, cfg: DataConfig, sink: ShardSink, workers: int | None) -> Collected:
    csv_path = source.path
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: CSV manifest not found")
    rows = read_csv_manifest(csv_path)
    has_split = [r.split is not None for r in rows]
    if any(has_split) and not all(has_split):
        missing = next(r for r in rows if r.split is None)
        raise DataError(f"{csv_path}:{missing.line}: the split column is empty here but set on other rows")
    has_group = [r.group is not None for r in rows]
    if any(has_group) and not all(has_group):
        missing = next(r for r in rows if r.group is None)
        raise DataError(f"{csv_path}:{missing.line}: the group column is empty here but set on other rows")
    labels = {r.label for r in rows}
    found = sorted(labels, key=lambda s: (0, int(s), s) if s.lstrip("-").isdigit() else (1, 0, s))
    names = tuple(cfg.class_names or found)
    out = Collected(class_names=names, sink=sink)
    for name in names:
        out.locations[name] = f"rows labelled {name!r} in {csv_path}"
    items = []
    for row in rows:
        path = Path(row.path) if Path(row.path).is_absolute() else csv_path.parent / row.path
        shown = f"{path} ({csv_path.name} line {row.line})"
        extra = {"split": row.split, "group": row.group}
        if row.attributes:  # attribute columns also enter the source fingerprint (an edited column is new data)
            extra["attributes"] = row.attributes
        items.append((path, row.path, row.label, shown, extra))
    _decode_all(out, items, cfg, workers, where=lambda label: f"in {csv_path}")
    return out


def _decode_all(out: Collected, items: list, cfg: DataConfig, workers: int | None, where: Callable[[str], str]) -> None:
    """Read, hash, validate and convert each (path, ref, label, shown, extra) item into ``out``; only
    images the sink does not hold yet are decoded (in a process pool, in order)."""
    index = {name: i for i, name in enumerate(out.class_names)}
    spec = imaging.ImageSpec(cfg.image_size, cfg.channels, cfg.decode)
    pending: dict[str, tuple[Path, str]] = {}  # key -> (file, name in errors) to decode
    order: list[tuple[str, str, int, str, dict]] = []
    for path, ref, label, shown, extra in items:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            out.problems.append((shown, "file not found"))
            out.fingerprint_lines.append(f"{extra.get('split')}\t{label}\t{extra.get('group')}\tmissing:{ref}")
            continue
        except OSError as err:
            out.problems.append((shown, f"unreadable file ({err.strerror or err})"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        attrs = "".join(f"\t{k}={v}" for k, v in sorted((extra.get("attributes") or {}).items()))
        out.fingerprint_lines.append(f"{extra.get('split')}\t{label}\t{extra.get('group')}\t{digest}{attrs}")
        if label not in index:
            out.problems.append((shown, f"label {label!r} ({where(label)}) is not in data.class_names {list(index)}"))
            continue
        if path.suffix.lower() not in imaging.EXTENSIONS:
            allowed = ", ".join(sorted(imaging.EXTENSIONS))
            out.problems.append(
                (shown, f"not an image file (extension {path.suffix or '(none)'!r}; expected {allowed})")
            )
            continue
        key = shards.image_key(data)
        if key not in pending and not out.sink.known(key):
            pending[key] = (path, shown)
        order.append((key, ref, index[label], shown, extra))
    failed: dict[str, str] = {}
    patients: dict[str, str] = {}
    for key, decoded in zip(pending, decode_files(list(pending.values()), spec, workers), strict=True):
        if isinstance(decoded, str):
            failed[key] = decoded
            continue
        out.sink.add(key, decoded.array, (decoded.original_size[1], decoded.original_size[0]), decoded.patient)
        if decoded.patient is not None:
            patients[key] = decoded.patient
    from_patient: list[int] = []  # images grouped by their DICOM patient (no group column in the source)
    for key, ref, label, shown, extra in order:
        if key in failed:
            out.problems.append((shown, failed[key]))
            continue
        if extra.get("group") is None and key in patients:
            extra = {**extra, "group": patients[key]}
            from_patient.append(len(out.keys))
        out.add(key, label, ref, shown, tuple(out.sink.items[key]["size"]), **extra)
    if from_patient:
        # Salt the patient keys with a secret of the dataset (a hash of every file's digest, never written):
        # groups stay stable across reruns, and a list of patient IDs cannot be matched against them.
        salt = hashlib.sha256("\n".join(["medpipe-phi", *sorted(out.fingerprint_lines)]).encode()).hexdigest()
        for i in from_patient:
            out.groups[i] = f"patient-{patient_hash(out.groups[i], salt)}"


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
