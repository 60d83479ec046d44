"""The current window, as rows the drift check compares with the reference.

Sources: arrays of images (:func:`window_from_images`), a folder of image files (:func:`load_image_folder`),
or inference-log rows written by the server (:func:`window_from_log`, :func:`read_log_window`).
Every source ends in the same columns: image features, PCA components, predicted_class, confidence,
label (None when no feedback), timestamp.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medpipe.errors import DataError
from medpipe.imaging import DEFAULT_MAX_PIXELS, EXTENSIONS, ImageError, ImageSpec, load_image
from medpipe.imaging.features import FEATURE_COLUMNS, image_features
from monitoring.reference import EmbedFn, ReferenceProfile, model_view, pc_columns, prob_columns


@dataclass(frozen=True)
class FolderImages:
    """The decoded files of a folder, and the files that could not be decoded (skipped, with why)."""

    images: np.ndarray  # uint8 (N, S, S, C) model input
    sizes: list[tuple[int, int]]  # original (height, width)
    channels: list[int]  # original channel counts
    names: list[str]  # relative paths of the decoded files
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)


def load_image_folder(directory: Path, spec: ImageSpec, max_pixels: int = DEFAULT_MAX_PIXELS) -> FolderImages:
    """Decode every image under ``directory`` (recursively) through the imaging contract, as the server does.

    A file that cannot be decoded is skipped and listed in ``skipped`` (with the reason); only a folder where
    nothing can be read is an error.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"image folder {directory} does not exist; pass --images DIR with image files in it")
    files = sorted(p for p in directory.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
    images, sizes, chans, names, bad = [], [], [], [], []
    for path in files:
        rel = str(path.relative_to(directory))
        try:
            image = load_image(path.read_bytes(), rel, spec, max_pixels=max_pixels)
        except ImageError as err:
            bad.append((rel, err.reason))
            continue
        except OSError as err:
            bad.append((rel, f"unreadable file ({err.strerror or err})"))
            continue
        images.append(image.array)
        sizes.append(image.original_size)
        chans.append(image.original_channels)
        names.append(rel)
    if not images and bad:
        raise DataError(f"no readable image in {directory} ({len(bad)} unreadable, e.g. {bad[0][0]}: {bad[0][1]})")
    stack = np.stack(images) if images else np.zeros((0, spec.size, spec.size, spec.channels), np.uint8)
    return FolderImages(stack, sizes, chans, names, bad)


def window_from_images(
    images: np.ndarray,
    embed_fn: EmbedFn,
    reference: ReferenceProfile,
    original_sizes: list[tuple[int, int]] | None = None,
    original_channels: list[int] | None = None,
    labels: list[str | None] | None = None,
) -> pd.DataFrame:
    """Features + model view for uint8 (N, H, W, C) images (the batch / ``--images`` path)."""
    feats = image_features(images, original_sizes, original_channels)
    if len(images):
        probs, emb = embed_fn(images)
    else:
        probs, emb = np.zeros((0, len(reference.class_names))), np.zeros((0, reference.components.shape[1]))
    frame = pd.concat([feats, model_view(reference, probs, emb)], axis=1)
    frame["label"] = labels if labels is not None else None
    return frame


def _as_array(value: Any) -> np.ndarray | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return np.frombuffer(bytes(value), dtype=np.float32).astype(np.float64)
    if isinstance(value, str):
        value = json.loads(value) if value else None
        if value is None:
            return None
    return np.asarray(value, dtype=np.float64)


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return json.loads(value) if value else {}
    return dict(value) if value is not None else {}


def window_from_log(rows: pd.DataFrame, reference: ReferenceProfile) -> pd.DataFrame:
    """Inference-log rows (timestamp, request_id, model_version, predicted_class, probabilities, features,
    embedding, label) -> window rows. Rows without an embedding get NaN components (the embedding signal is
    then skipped)."""
    k = len(reference.class_names)
    columns = [*FEATURE_COLUMNS, *prob_columns(k), "confidence", "predicted_class", *pc_columns(reference.n_components)]
    columns.append("label")
    if rows is None or rows.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    feats = pd.DataFrame([_as_dict(v) for v in rows["features"]]).reindex(columns=list(FEATURE_COLUMNS))
    probs = [_as_array(v) for v in rows["probabilities"]]
    probs_arr = np.stack([p if p is not None else np.full(k, np.nan) for p in probs])
    frame = feats.astype("float64")
    for i, col in enumerate(prob_columns(k)):
        frame[col] = probs_arr[:, i]
    frame["confidence"] = np.nanmax(probs_arr, axis=1) if probs_arr.size else np.zeros(len(rows))
    pred = rows.get("predicted_class")
    if pred is None or pred.isna().all():
        pred = pd.Series([reference.class_names[i] for i in reference.decide(np.nan_to_num(probs_arr))])
    else:
        pred = pred.map(lambda v: reference.class_names[int(v)] if isinstance(v, int | np.integer) else str(v))
    frame["predicted_class"] = pred.to_numpy()
    embs = [_as_array(v) for v in rows["embedding"]] if "embedding" in rows else [None] * len(rows)
    pcs = np.full((len(rows), reference.n_components), np.nan)
    ok = [i for i, e in enumerate(embs) if e is not None]
    if ok:
        pcs[ok] = reference.project(np.stack([embs[i] for i in ok]))
    for i, col in enumerate(pc_columns(reference.n_components)):
        frame[col] = pcs[:, i]
    frame["label"] = rows["label"].to_numpy() if "label" in rows else None
    if "timestamp" in rows:
        frame["timestamp"] = rows["timestamp"].to_numpy()
    if "model_version" in rows:
        frame["model_version"] = rows["model_version"].to_numpy()
    return frame


def read_log_window(
    log_path: Path, reference: ReferenceProfile, since: datetime | None, until: datetime | None
) -> pd.DataFrame:
    """Read the serving inference log between ``since`` and ``until`` and convert it to window rows."""
    from components.serving.inference_log import InferenceLog

    if not Path(log_path).exists():
        raise DataError(
            f"inference log {log_path} does not exist: nothing has been served yet; "
            "serve some requests or check a folder with `medpipe monitor --images DIR`"
        )
    return window_from_log(InferenceLog(log_path).read_window(since, until), reference)
