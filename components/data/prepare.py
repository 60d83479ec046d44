"""The ``prepare`` stage: validate a source, convert it, split it, and write the canonical prepared dataset.

``prepare(source, out_dir, cfg)`` is the one implementation; the DVC stage (``medpipe stage
prepare``), ``medpipe data ingest`` and the tests all call it. The output (see
:mod:`components.data.dataset`) is written to a temporary sibling folder and moved into place, so a
failure never leaves a half-written folder and leaves the previous one intact. Output depends only on
the source content and the ``data.*`` params in :data:`PREPARE_PARAMS` (no paths, no timestamps), so the
same input always gives the same DVC md5.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from components.data.classes import check_class_splits, previous_class_names
from components.data.collect import Collected, collect
from components.data.dataset import SPLITS, PreparedData, write_manifest
from components.data.shard_sink import ShardSink, conform_key, previous_index
from components.data.sources import (
    DataSource,
    source_from_path,
)
from components.data.splits import group_split, stratified_split
from components.data.swap import swap_in
from medpipe.config import DataConfig
from medpipe.errors import DataError

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
VALIDATED_SUFFIX = ".validated"  # `medpipe data ingest` leaves the source it just validated here (see reuse_candidates)
FORMAT_VERSION = 1
_MAX_LISTED = 12


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

    Raises :class:`~medpipe.errors.DataError` naming the offending file(s) when the data is invalid
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
    candidates = reuse_from if reuse_from is not None else reuse_candidates(out_dir)
    previous, previous_names = previous_index(candidates, conform), previous_class_names(candidates)
    outcome: dict[str, Any] = {}

    def write(tmp: Path) -> None:
        sink = ShardSink(tmp, conform, previous)
        try:
            collected = collect(source, cfg, sink, workers)
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


def reuse_candidates(out_dir: Path) -> tuple[Path, ...]:
    """Where a prepare into ``out_dir`` looks for shards to carry over, first match first: the folder
    ``medpipe data ingest`` validated the same source into (``.<name>.validated`` beside ``out_dir``, present
    only while an ingest runs ``dvc repro``), then ``out_dir``'s previous version."""
    out_dir = Path(out_dir)
    return (out_dir.parent / f".{out_dir.name}{VALIDATED_SUFFIX}", out_dir)


def report_counts(prepared_dir: Path) -> tuple[int, int]:
    """``(decoded, reused)``: how many images the prepare that wrote ``prepared_dir`` decoded and carried over."""
    try:
        report = json.loads((Path(prepared_dir) / VALIDATION_REPORT).read_text())
    except (OSError, ValueError):
        return 0, 0
    return int(report.get("decoded", 0)), int(report.get("reused", 0))


def prepare_params(cfg: DataConfig) -> dict[str, Any]:
    """The part of the data config that determines the prepared output (as JSON-able values)."""
    dumped = cfg.model_dump(mode="json")
    return {k: dumped[k] for k in PREPARE_PARAMS}


# --- validation ------------------------------------------------------------------------------
def _apply_policy(collected: Collected, source: DataSource, cfg: DataConfig) -> list[dict[str, str]]:
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


def _filter(c: Collected, keep: list[bool]) -> None:
    for name in ("keys", "labels", "refs", "groups", "splits", "attributes", "sizes", "shown"):
        setattr(c, name, [v for v, k in zip(getattr(c, name), keep, strict=True) if k])


def _check_classes(c: Collected, labels: np.ndarray, source: DataSource, cfg: DataConfig) -> None:
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
    c: Collected, labels: np.ndarray, source: DataSource, cfg: DataConfig
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
    c: Collected,
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
    columns = sorted({k for a in c.attributes for k in a})
    if columns:  # CSV attribute columns, per split in image order: the evaluation reports each subgroup
        manifest["attributes"] = {
            s: {col: [c.attributes[i].get(col, "unknown") for i in idx] for col in columns}
            for s, idx in by_split.items()
        }
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
