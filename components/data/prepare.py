"""The ``prepare`` stage: validate a source, convert it, split it, and write the canonical prepared dataset.

``prepare(source, out_dir, cfg)`` is the one implementation; the DVC stage (``python -m
components.data.prepare``), ``medpipe data ingest`` and the tests all call it. The output (see
:mod:`components.data.dataset`) is written to a temporary sibling folder and moved into place, so a
failure never leaves a half-written folder and leaves the previous one intact. Output depends only on
the source content and the ``data.*`` params in :data:`PREPARE_PARAMS` (no paths, no timestamps), so the
same input always gives the same DVC md5.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from components.data import shards
from components.data.classes import check_class_splits, previous_class_names
from components.data.dataset import SPLITS, PreparedData, write_manifest
from components.data.shard_sink import ShardSink, conform_key, decode_files, previous_index
from components.data.sources import (
    DataSource,
    class_dirs,
    iter_class_files,
    read_csv_manifest,
    source_from_path,
    split_layout,
)
from components.data.splits import group_split, stratified_split
from components.data.swap import swap_in
from components.errors import DataError
from medpipe import imaging
from medpipe.config import DataConfig
from medpipe.imaging.dicom import patient_hash

log = logging.getLogger(__name__)

# The data.* keys the stage reads (dvc.yaml lists exactly these under `params:`).
PREPARE_PARAMS = (
    "image_size",
    "channels",
    "split",
    "min_images_per_class",
    "on_invalid",
    "mixed_sizes",
    "class_names",
    "decode",
)
VALIDATION_REPORT = "validation.json"
FORMAT_VERSION = 1
_MAX_LISTED = 12


@dataclass
class _Collected:
    """Every usable image of a source (its key; the pixels went to ``sink``), plus every problem found."""

    class_names: tuple[str, ...]
    sink: ShardSink
    keys: list[str] = field(default_factory=list)  # content address of each image (see components.data.shards)
    labels: list[int] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)  # where the image came from, relative to the source
    groups: list[str | None] = field(default_factory=list)
    splits: list[str | None] = field(default_factory=list)
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


# --- public API ------------------------------------------------------------------------------
def prepare(
    source: DataSource | Path,
    out_dir: Path,
    cfg: DataConfig,
    *,
    reuse_from: Sequence[Path] | None = None,
    workers: int | None = None,
) -> PreparedData:
    """Validate and convert ``source`` (a :class:`DataSource`, a canonical raw folder, or a local
    .npz / image folder / CSV path) into the prepared dataset at ``out_dir``.

    Images stream into content-addressed shards (:mod:`components.data.shards`) as they are decoded,
    ``workers`` processes at a time. Images already in a previous prepared folder (``reuse_from``,
    default ``out_dir`` itself) under the same decode policy, size and channels are not decoded again:
    their shards are carried over, so a version that adds k images stores about k images more.

    Raises :class:`~components.errors.DataError` naming the offending file(s) when the data is invalid
    (``data.on_invalid=fail``); with ``skip-and-report`` bad files are skipped and listed in
    ``validation.json`` and the manifest.
    """
    if not isinstance(source, DataSource):
        path = Path(source).expanduser().resolve()
        if not path.exists():
            raise DataError(f"{path}: data source not found; run `medpipe data ingest` or check the path")
        source = source_from_path(path)
    out_dir = Path(out_dir)
    conform = conform_key(cfg.image_size, cfg.channels, cfg.decode.model_dump(mode="json"))
    candidates = reuse_from if reuse_from is not None else (out_dir,)
    previous, previous_names = previous_index(candidates, conform), previous_class_names(candidates)
    outcome: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        sink = ShardSink(tmp, conform, previous)
        try:
            collected = _collect(source, cfg, sink, workers)
            skipped = _apply_policy(collected, source, cfg)
            labels = np.asarray(collected.labels, dtype=np.int64)
            _check_classes(collected, labels, source, cfg)
            assignment, split_info = _assign_splits(collected, labels, source, cfg)
            names, where = collected.class_names, str(source.path)
            check_class_splits(names, labels, assignment, cfg, where, previous_names, collected.locations)
            manifest, report = _describe(collected, labels, assignment, split_info, skipped, source, cfg)
        except BaseException:
            sink.writer.discard()
            raise
        keys = np.asarray(collected.keys, dtype=object)
        sink.finish({s: (keys[assignment == s].tolist(), labels[assignment == s].tolist()) for s in SPLITS})
        write_manifest(tmp, manifest)
        report["decoded"], report["reused"] = sink.decoded, sink.reused
        (tmp / VALIDATION_REPORT).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
        outcome.update(manifest=manifest, skipped=skipped)

    _write_atomically(out_dir, write)
    manifest, skipped = outcome["manifest"], outcome["skipped"]
    if skipped:
        log.warning("%d invalid file(s) skipped; see %s", len(skipped), out_dir / VALIDATION_REPORT)
    if manifest["duplicates"]["count"]:
        log.warning("%d image(s) appear in more than one split (by sha256)", manifest["duplicates"]["count"])
    return PreparedData(
        path=out_dir,
        class_names=tuple(manifest["class_names"]),
        counts=manifest["counts"],
        image_size=cfg.image_size,
        channels=cfg.channels,
        decode=cfg.decode,
    )


def prepare_params(cfg: DataConfig) -> dict[str, Any]:
    """The part of the data config that determines the prepared output (as JSON-able values)."""
    dumped = cfg.model_dump(mode="json")
    return {k: dumped[k] for k in PREPARE_PARAMS}


# --- collecting ------------------------------------------------------------------------------
def _collect(source: DataSource, cfg: DataConfig, sink: ShardSink, workers: int | None) -> _Collected:
    if source.kind == "npz":
        return _collect_npz(source, cfg, sink)
    if source.kind == "imagefolder":
        return _collect_folder(source, cfg, sink, workers)
    return _collect_csv(source, cfg, sink, workers)


def _collect_npz(source: DataSource, cfg: DataConfig, sink: ShardSink) -> _Collected:
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
    out = _Collected(class_names=tuple(names), sink=sink, keep_refs=False)
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


def _collect_folder(source: DataSource, cfg: DataConfig, sink: ShardSink, workers: int | None) -> _Collected:
    root = source.path
    if not root.is_dir():
        raise DataError(f"{root}: image folder not found")
    layout = split_layout(root)
    parts = layout.items() if layout else [(None, root)]
    found = sorted({c for _, folder in parts for c in class_dirs(folder)})
    names = tuple(cfg.class_names or found)
    out = _Collected(class_names=names, sink=sink)
    for name in names:
        out.locations[name] = str(root / name) if not layout else f"{root}/<split>/{name}"
    items = []
    for split, folder in parts:
        for cls, path in iter_class_files(folder):
            rel = path.relative_to(root).as_posix()
            items.append((path, rel, cls, str(path), {"split": split}))
    _decode_all(out, items, cfg, workers, where=lambda label: f"folder {root / label}")
    return out


def _collect_csv(source: DataSource, cfg: DataConfig, sink: ShardSink, workers: int | None) -> _Collected:
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
    out = _Collected(class_names=names, sink=sink)
    for name in names:
        out.locations[name] = f"rows labelled {name!r} in {csv_path}"
    items = []
    for row in rows:
        path = Path(row.path) if Path(row.path).is_absolute() else csv_path.parent / row.path
        shown = f"{path} ({csv_path.name} line {row.line})"
        items.append((path, row.path, row.label, shown, {"split": row.split, "group": row.group}))
    _decode_all(out, items, cfg, workers, where=lambda label: f"in {csv_path}")
    return out


def _decode_all(
    out: _Collected, items: list, cfg: DataConfig, workers: int | None, where: Callable[[str], str]
) -> None:
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
        out.fingerprint_lines.append(f"{extra.get('split')}\t{label}\t{extra.get('group')}\t{digest}")
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


# --- validation ------------------------------------------------------------------------------
def _apply_policy(collected: _Collected, source: DataSource, cfg: DataConfig) -> list[dict[str, str]]:
    """Reject minority sizes when asked, then fail on any problem or drop them per ``data.on_invalid``."""
    if cfg.mixed_sizes == "reject" and len(set(collected.sizes)) > 1:
        common = Counter(collected.sizes).most_common(1)[0][0]
        keep = [s == common for s in collected.sizes]
        for ok, shown, (w, h) in zip(keep, collected.shown, collected.sizes, strict=True):
            if not ok:
                collected.problems.append(
                    (
                        shown,
                        f"size {w}x{h} differs from the common size {common[0]}x{common[1]} "
                        "(data.mixed_sizes=reject; use resize to accept it)",
                    )
                )
        _filter(collected, keep)
    problems = collected.problems
    if problems and cfg.on_invalid == "fail":
        listed = "\n".join(f"  {f}: {r}" for f, r in problems[:_MAX_LISTED])
        more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
        raise DataError(
            f"{len(problems)} invalid file(s) in {source.path} (data.on_invalid=fail):\n{listed}{more}\n"
            "Fix or remove them, or set data.on_invalid=skip-and-report to skip them (they are then listed in "
            f"{VALIDATION_REPORT})."
        )
    return [{"file": f, "reason": r} for f, r in problems]


def _filter(c: _Collected, keep: list[bool]) -> None:
    for name in ("keys", "labels", "refs", "groups", "splits", "sizes", "shown"):
        setattr(c, name, [v for v, k in zip(getattr(c, name), keep, strict=True) if k])


def _check_classes(c: _Collected, labels: np.ndarray, source: DataSource, cfg: DataConfig) -> None:
    names = c.class_names
    if len(names) < 2:
        raise DataError(
            f"{source.path}: {len(names)} class(es) found {list(names)}; a classifier needs at least 2 "
            "(one folder / label value per class)"
        )
    if len(set(names)) != len(names):
        raise DataError(f"data.class_names {list(names)} has duplicates")
    counts = np.bincount(labels, minlength=len(names)) if len(labels) else np.zeros(len(names), int)
    small = [(n, int(k)) for n, k in zip(names, counts, strict=True) if k < cfg.min_images_per_class]
    if small:
        lines = "\n".join(f"  class {n!r}: {k} image(s) ({c.locations.get(n, source.path)})" for n, k in small)
        raise DataError(
            f"{source.path}: {len(small)} class(es) with fewer than data.min_images_per_class="
            f"{cfg.min_images_per_class} usable images:\n{lines}\nAdd images or lower data.min_images_per_class."
        )


def _assign_splits(
    c: _Collected, labels: np.ndarray, source: DataSource, cfg: DataConfig
) -> tuple[np.ndarray, dict[str, Any]]:
    sp = cfg.split
    params = {"val": sp.val, "test": sp.test, "seed": sp.seed}
    if c.splits and all(s is not None for s in c.splits):
        assignment = np.asarray(c.splits, dtype=object).astype(str)
        carved = []
        for missing, frac in (("test", sp.test), ("val", sp.val)):
            if not (assignment == missing).any():
                train = np.flatnonzero(assignment == "train")
                sub = stratified_split(
                    labels[train],
                    val=0.0 if missing == "test" else frac,
                    test=frac if missing == "test" else 0.0,
                    seed=sp.seed,
                )
                assignment[train[sub == missing]] = missing
                carved.append(missing)
        if carved:
            return assignment, {"strategy": "source", "carved_from_train": carved, **params}
        return assignment, {"strategy": "source"}
    if c.groups and all(g is not None for g in c.groups):
        groups = np.asarray(c.groups, dtype=str)
        assignment = group_split(labels, groups, sp.val, sp.test, sp.seed, where=str(source.path))
        return assignment, {"strategy": "stratified-group", **params}
    return stratified_split(labels, sp.val, sp.test, sp.seed), {"strategy": "stratified", **params}


# --- describing ------------------------------------------------------------------------------
def _describe(
    c: _Collected,
    labels: np.ndarray,
    assignment: np.ndarray,
    split_info: dict[str, Any],
    skipped: list[dict[str, str]],
    source: DataSource,
    cfg: DataConfig,
) -> tuple[dict[str, Any], dict[str, Any]]:
    shas = [c.sink.items[k]["sha256"] for k in c.keys]
    by_split = {s: np.flatnonzero(assignment == s) for s in SPLITS}
    seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for i, sha in enumerate(shas):
        seen[sha].append((str(assignment[i]), c.refs[i]))
    dups = [
        {"sha256": sha, "splits": sorted({s for s, _ in where}), "files": [r for _, r in where]}
        for sha, where in sorted(seen.items())
        if len({s for s, _ in where}) > 1
    ]
    target = (cfg.image_size, cfg.image_size)
    sizes = Counter(f"{w}x{h}" for w, h in c.sizes)
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "class_names": list(c.class_names),
        "counts": {
            s: {n: int((labels[idx] == i).sum()) for i, n in enumerate(c.class_names)} for s, idx in by_split.items()
        },
        "totals": {s: int(len(idx)) for s, idx in by_split.items()},
        "image_size": cfg.image_size,
        "channels": cfg.channels,
        "source": {
            "kind": source.kind,
            "name": source.name,
            "fingerprint": hashlib.sha256("\n".join(sorted(c.fingerprint_lines)).encode()).hexdigest(),
            "items": len(c.keys) + len(skipped),
        },
        "split": split_info,
        "params": prepare_params(cfg),
        "sha256": {s: [shas[i] for i in idx] for s, idx in by_split.items()},
        "duplicates": {"count": len(dups), "items": dups[:100]},
        "skipped": skipped,
        "source_sizes": dict(sorted(sizes.items())),
        "resized": int(sum(1 for s in c.sizes if s != target)),
    }
    if c.keep_refs:
        manifest["files"] = {s: [c.refs[i] for i in idx] for s, idx in by_split.items()}
    if c.groups and all(g is not None for g in c.groups):
        manifest["groups"] = {s: [c.groups[i] for i in idx] for s, idx in by_split.items()}
    report = {
        "policy": cfg.on_invalid,
        "skipped": skipped,
        "duplicates_across_splits": dups,
        "ok": len(c.keys),
    }
    return manifest, report


# --- writing ---------------------------------------------------------------------------------
def _write_atomically(out_dir: Path, write: Any) -> None:
    """Write into a temporary sibling, then swap it in: readers never see a half-written folder."""
    parent = out_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
    try:
        write(tmp)
        tmp.chmod(0o755)
        swap_in(tmp, out_dir)  # atomic: a kill leaves the old or the new folder, never none
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# --- DVC stage entry point -------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m components.data.prepare``: the DVC ``prepare`` stage (reads params.yaml)."""
    from medpipe.config import ConfigError, load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--raw", type=Path, default=Path("data/raw"))
    parser.add_argument("--out", type=Path, default=Path("data/prepared"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        cfg = load_config(args.params).data
        result = prepare(args.raw, args.out, cfg)
    except (DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    totals = {s: sum(c.values()) for s, c in result.counts.items()}
    print(f"prepared {result.path}: classes {list(result.class_names)}, images per split {totals}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
