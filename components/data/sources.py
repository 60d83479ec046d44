"""Where a dataset comes from: resolve ``data.source`` and copy it into the canonical raw layout.

Three kinds of source:

* ``npz``: a MedMNIST name (``breastmnist``, looked up in ``$MEDPIPE_DATA_DIR``, then the download
  cache, then zenodo with the official md5) or a local ``.npz`` file;
* ``imagefolder``: ``root/<class>/**/*.png|jpg|jpeg|bmp|tif|tiff`` (optionally ``root/{train,val,test}/<class>/``);
* ``csv``: a manifest with a header ``path,label[,group][,split]``, paths relative to the CSV; any other column
  (e.g. ``sex``, ``age_band``, ``site``, ``scanner``) is an attribute, reported per subgroup on test.

The canonical raw layout (what ``dvc add data/raw`` tracks) is self-describing through ``source.json``::

    data/raw/source.json      # kind, name, entry, class names (MedMNIST), origin
    data/raw/<name>.npz       # npz
    data/raw/images/<class>/  # imagefolder
    data/raw/manifest.csv     # csv (+ the images it lists, at the same relative paths when possible)
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from components.data import medmnist
from medpipe.errors import DataError
from medpipe.imaging.decode import EXTENSIONS

if TYPE_CHECKING:
    from medpipe.settings import Settings

SourceKind = Literal["npz", "imagefolder", "csv"]
IMAGE_EXTENSIONS = EXTENSIONS  # what the imaging contract decodes
IGNORED_NAMES = frozenset({"Thumbs.db", "desktop.ini"})
SPLIT_DIRS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
SOURCE_JSON = "source.json"
CSV_NAME = "manifest.csv"
IMAGES_DIR = "images"


@dataclass(frozen=True)
class DataSource:
    """A resolved dataset: its kind, the file or folder to read, and what is known about its classes."""

    kind: SourceKind
    path: Path  # the .npz file, the ImageFolder root, or the CSV file
    name: str
    class_names: tuple[str, ...] | None = None  # known names in label order (MedMNIST metadata)
    origin: str = ""  # what the user asked for
    extra: dict[str, str] = field(default_factory=dict)


def is_ignored(path: Path) -> bool:
    """Hidden files and OS litter are not part of a dataset (no error, not copied)."""
    return path.name.startswith(".") or path.name in IGNORED_NAMES


def resolve_source(spec: str | Path, settings: Settings | None = None, *, allow_download: bool = True) -> DataSource:
    """Turn ``data.source`` into a :class:`DataSource`.

    An existing path wins (relative to the working directory, then the project directory); else a
    MedMNIST name is fetched (md5-checked) from ``settings.data_dir``, the download cache, or zenodo.
    """
    text = str(spec).strip()
    if not text:
        raise DataError("data.source is empty: give a MedMNIST name (e.g. breastmnist), a .npz, a folder or a CSV")
    candidates = [Path(text).expanduser()]
    if settings is not None and not candidates[0].is_absolute():
        candidates.append(settings.project_dir / text)
    for path in candidates:
        if path.exists():
            return source_from_path(path.resolve(), origin=text)
    info = medmnist.lookup(text)
    if info is not None:
        search = [settings.data_dir] if settings is not None else []
        cache = settings.download_cache if settings is not None else Path.home() / ".cache" / "medpipe"
        versioned = _versioned_copy(text, settings)
        offline = settings is not None and settings.offline
        try:
            path = medmnist.fetch(
                info, search, cache, allow_download=allow_download and versioned is None and not offline
            )
        except DataError:
            if versioned is None:
                raise
            return versioned  # offline rerun: the DVC-versioned copy of the same dataset in data/raw
        return DataSource("npz", path, info.name, info.class_names, origin=text, extra={"md5": info.md5})
    raise DataError(
        f"data.source {text!r} is neither an existing path (a .npz file, an image folder or a CSV manifest) "
        f"nor a known MedMNIST name ({', '.join(medmnist.names())}); check the spelling or the path"
    )


def _versioned_copy(spec: str, settings: Settings | None) -> DataSource | None:
    """The project's ingested ``data/raw`` when it holds ``spec`` (same origin): what a rerun uses offline."""
    if settings is None or not (settings.project_dir / "data" / "raw" / SOURCE_JSON).is_file():
        return None
    try:
        raw = read_raw(settings.project_dir / "data" / "raw")
    except DataError:
        return None
    return raw if raw.origin == spec and raw.path.exists() else None


def source_from_path(path: Path, origin: str = "") -> DataSource:
    """Classify a local path: a canonical raw folder, a .npz, a .csv, or an ImageFolder tree."""
    origin = origin or str(path)
    if path.is_dir():
        if (path / SOURCE_JSON).is_file():
            return read_raw(path)
        return DataSource("imagefolder", path, path.name, origin=origin)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        info = medmnist.lookup(path.stem)
        return DataSource("npz", path, path.stem, info.class_names if info else None, origin=origin)
    if suffix == ".csv":
        return DataSource("csv", path, path.stem, origin=origin)
    raise DataError(f"{path}: not a supported data source (expected a .npz file, a .csv manifest or an image folder)")


def read_raw(raw_dir: Path) -> DataSource:
    """Read a canonical raw folder (written by :func:`stage_raw`) back as a :class:`DataSource`."""
    raw_dir = Path(raw_dir)
    meta_path = raw_dir / SOURCE_JSON
    if not meta_path.is_file():
        raise DataError(f"{raw_dir} has no {SOURCE_JSON}: it is not an ingested dataset; run `medpipe data ingest`")
    try:
        meta = json.loads(meta_path.read_text())
        kind, name, entry = meta["kind"], meta["name"], meta["entry"]
    except (ValueError, KeyError) as err:
        raise DataError(f"{meta_path} is unreadable ({err}); run `medpipe data ingest` again") from None
    names = meta.get("class_names")
    return DataSource(kind, raw_dir / entry, name, tuple(names) if names else None, meta.get("origin", ""))


# --- ImageFolder / CSV listing ---------------------------------------------------------------
def split_layout(root: Path) -> dict[str, Path] | None:
    """``root/{train,val,test}/<class>/`` -> {split: folder}; None for a plain ``root/<class>/`` tree."""
    subdirs = [p for p in root.iterdir() if p.is_dir() and not is_ignored(p)]
    names = {p.name.lower() for p in subdirs}
    if subdirs and "train" in names and names <= set(SPLIT_DIRS):
        return {SPLIT_DIRS[p.name.lower()]: p for p in subdirs}
    return None


def iter_class_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Yield ``(class folder name, file)`` for every non-hidden file below ``root/<class>/``, sorted."""
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not is_ignored(p)):
        for path in sorted(class_dir.rglob("*")):
            rel = path.relative_to(class_dir)
            if path.is_file() and not any(is_ignored(Path(part)) for part in rel.parts):
                yield class_dir.name, path


def class_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not is_ignored(p))


@dataclass(frozen=True)
class CsvRow:
    line: int  # 1-based line in the CSV (header is line 1)
    path: str  # as written in the CSV
    label: str
    group: str | None
    split: str | None
    attributes: dict[str, str] = field(default_factory=dict)  # the other columns (empty cell: "unknown")


MANIFEST_COLUMNS = frozenset({"path", "label", "group", "split"})


def read_csv_manifest(csv_path: Path) -> list[CsvRow]:
    """Parse a ``path,label[,group][,split]`` manifest; the message of every error names the CSV and line."""
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{csv_path}: cannot read the CSV manifest ({err})") from None
    reader = csv.DictReader(text.splitlines())
    header = {(h or "").strip().lower(): h for h in reader.fieldnames or []}
    if "path" not in header or "label" not in header:
        raise DataError(
            f"{csv_path}: the CSV manifest needs a header with 'path' and 'label' columns (optional: 'group', "
            f"'split'); found {list(reader.fieldnames or [])}"
        )
    extra = [h for key, h in header.items() if key and key not in MANIFEST_COLUMNS]  # attribute columns
    rows = []
    for i, rec in enumerate(reader, start=2):
        path = (rec.get(header["path"]) or "").strip()
        label = (rec.get(header["label"]) or "").strip()
        if not path and not label:
            continue
        if not path or not label:
            raise DataError(f"{csv_path}:{i}: empty {'path' if not path else 'label'} in row {rec}")
        group = _cell(rec, header.get("group")) or None
        split = _cell(rec, header.get("split")).lower() or None
        if split is not None and split not in SPLIT_DIRS:
            raise DataError(f"{csv_path}:{i}: split {split!r} is not one of train, val, test")
        attributes = {h.strip(): _cell(rec, h) or "unknown" for h in extra}
        rows.append(CsvRow(i, path, label, group, SPLIT_DIRS[split] if split else None, attributes))
    if not rows:
        raise DataError(f"{csv_path}: the CSV manifest has no rows")
    return rows


def _cell(rec: dict[str, str | None], column: str | None) -> str:
    return (rec.get(column) or "").strip() if column else ""


def csv_target(rel: str) -> str:
    """Where a CSV-listed file goes inside the raw folder: the same relative path when it stays inside."""
    posix = PurePosixPath(rel.replace("\\", "/"))
    if not posix.is_absolute() and ".." not in posix.parts:
        return str(posix)
    digest = hashlib.sha256(rel.encode()).hexdigest()[:10]
    return f"external/{digest}_{posix.name}"


# --- staging into the canonical raw layout ---------------------------------------------------
def stage_raw(source: DataSource, dest: Path) -> DataSource:
    """Copy ``source`` into ``dest`` (created; must not exist) in the canonical raw layout."""
    dest = Path(dest)
    dest.mkdir(parents=True)
    if source.kind == "npz":
        entry = f"{source.name}.npz"
        shutil.copy2(source.path, dest / entry)
    elif source.kind == "imagefolder":
        entry = IMAGES_DIR
        shutil.copytree(source.path, dest / entry, ignore=_ignore_litter)
    elif source.kind == "csv":
        entry = CSV_NAME
        base = source.path.parent
        rows = read_csv_manifest(source.path)
        with open(source.path, newline="", encoding="utf-8-sig") as f:
            records = list(csv.reader(f))
        path_col = [c.strip().lower() for c in records[0]].index("path")
        by_line = {row.line: row for row in rows}
        for lineno, record in enumerate(records[1:], start=2):
            row = by_line.get(lineno)
            if row is None:
                continue
            target = csv_target(row.path)
            src = Path(row.path) if Path(row.path).is_absolute() else base / row.path
            if src.is_file():
                (dest / target).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / target)
            record[path_col] = target
        with open(dest / entry, "w", newline="", encoding="utf-8") as f:
            csv.writer(f, lineterminator="\n").writerows(records)
    else:  # pragma: no cover - Literal guards this
        raise DataError(f"unknown source kind {source.kind!r}")
    meta = {
        "kind": source.kind,
        "name": source.name,
        "entry": entry,
        "class_names": list(source.class_names) if source.class_names else None,
        "origin": source.origin,
    }
    (dest / SOURCE_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return read_raw(dest)


def _ignore_litter(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if is_ignored(Path(n))]
