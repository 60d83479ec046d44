"""The reference profile: what images the model did not train on look like, stored with the model version.

Built at training time from held-out images (``monitoring.reference_splits``, default the val split: the
model has fit its train images, so their embeddings and confidences are not what unseen images from the
same distribution give). Saved as a folder (``reference.parquet`` + ``pca.npz`` + ``profile.json`` +
``thumbnails.npy``) that the registry logs as an MLflow artifact of the model version, so a new champion
brings its own reference. The ATC threshold of the label-free accuracy estimate is fitted on the same rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from components.data.batches import SplitBatches, split_batches
from components.data.dataset import read_manifest
from medpipe.config import MonitoringConfig
from medpipe.errors import DataError
from medpipe.imaging.features import image_features
from medpipe.metrics import OperatingPoint
from monitoring.estimate import atc_estimate, fit_atc_threshold

log = logging.getLogger(__name__)

#: (probabilities (N, K), embeddings (N, D)) for uint8 (N, H, W, C) images: ONNX session or PyTorch model.
EmbedFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
FILES = ("reference.parquet", "pca.npz", "profile.json")
THUMBNAILS = "thumbnails.npy"
N_THUMBNAILS = 32


def pc_columns(n: int) -> list[str]:
    return [f"pc_{i}" for i in range(n)]


def prob_columns(n: int) -> list[str]:
    """Class-probability columns ``prob_0`` .. ``prob_{n-1}`` (in class-name order)."""
    return [f"prob_{i}" for i in range(n)]


@dataclass
class ReferenceProfile:
    """Reference rows (features, PCA components, class probabilities, prediction, confidence, label, split), the
    fitted projection, the ATC threshold and a few thumbnails for the report."""

    frame: pd.DataFrame
    emb_mean: np.ndarray  # (D,) standardisation of raw embeddings before PCA
    emb_scale: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) PCA axes
    explained_variance: np.ndarray  # (k,) for whitening
    class_names: list[str]
    atc_threshold: float  # label-free accuracy estimate: share of confidences above it (monitoring.estimate)
    reference_accuracy: float | None
    image_size: int
    channels: int
    meta: dict = field(default_factory=dict)
    thumbnails: np.ndarray | None = field(default=None, repr=False)  # uint8 (n, H, W, C) sample of the images
    operating_point: OperatingPoint | None = None  # the served decision (binary: threshold; else argmax)

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """Class indices (N,) of the served decision: the model's stored threshold (binary), else argmax, as
        :meth:`medpipe.imaging.preprocessing.Preprocessing.decide` decides for serving."""
        probs = np.asarray(probs)
        if not len(probs):
            return np.zeros(0, dtype=int)
        return self.operating_point.predict(probs) if self.operating_point else probs.argmax(axis=1)

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """Raw embeddings (N, D) -> whitened PCA components (N, k)."""
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.ndim != 2 or embeddings.shape[1] != self.components.shape[1]:
            raise DataError(
                f"embeddings of shape {embeddings.shape} do not fit this reference (dimension "
                f"{self.components.shape[1]}): the reference belongs to another model version; rebuild it"
            )
        z = (embeddings - self.emb_mean) / self.emb_scale
        return (z @ self.components.T) / np.sqrt(self.explained_variance)

    def expected_accuracy(self, confidence: np.ndarray) -> float | None:
        """Label-free accuracy estimate (ATC) of a window with these max class probabilities."""
        return atc_estimate(confidence, self.atc_threshold)

    def save(self, directory: Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.frame.to_parquet(directory / "reference.parquet", index=False)
        np.savez(
            directory / "pca.npz",
            emb_mean=self.emb_mean,
            emb_scale=self.emb_scale,
            components=self.components,
            explained_variance=self.explained_variance,
        )
        profile = {
            "class_names": self.class_names,
            "atc_threshold": self.atc_threshold,
            "reference_accuracy": self.reference_accuracy,
            "image_size": self.image_size,
            "channels": self.channels,
            "meta": self.meta,
            "operating_point": self.operating_point.model_dump(mode="json") if self.operating_point else None,
        }
        (directory / "profile.json").write_text(json.dumps(profile, indent=2) + "\n")
        if self.thumbnails is not None:
            np.save(directory / THUMBNAILS, self.thumbnails)
        return directory

    @classmethod
    def load(cls, directory: Path) -> ReferenceProfile:
        directory = Path(directory)
        missing = [f for f in FILES if not (directory / f).is_file()]
        if missing:
            raise DataError(
                f"reference profile {directory} lacks {', '.join(missing)}; build it with "
                "monitoring.reference.build_reference (the training flow does) or download the model's artifact"
            )
        profile = json.loads((directory / "profile.json").read_text())
        if "atc_threshold" not in profile:
            raise DataError(
                f"reference profile {directory} predates the ATC estimate (no atc_threshold); rebuild it with "
                "monitoring.reference.build_reference (retrain, or `medpipe monitor --reference` a fresh one)"
            )
        with np.load(directory / "pca.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        thumbs = np.load(directory / THUMBNAILS) if (directory / THUMBNAILS).is_file() else None
        frame = pd.read_parquet(directory / "reference.parquet")
        op = profile.pop("operating_point", None)  # profiles built before medpipe 0.3 have none: argmax
        op = OperatingPoint.model_validate(op) if op else None
        return cls(frame=frame, **arrays, **profile, thumbnails=thumbs, operating_point=op)


def model_view(profile_or_none: ReferenceProfile | None, probs: np.ndarray, embeddings: np.ndarray) -> pd.DataFrame:
    """Class probabilities, predicted class name, max probability and (given a profile) the PCA components."""
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1] if probs.ndim == 2 else len(profile_or_none.class_names) if profile_or_none else 0
    frame = pd.DataFrame(probs.reshape(len(probs), k), columns=prob_columns(k))
    frame["confidence"] = probs.max(axis=1) if len(probs) else np.zeros(0)
    if profile_or_none is not None:  # the served decision (stored threshold), not argmax
        pred = profile_or_none.decide(probs)
    else:
        pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
    names = profile_or_none.class_names if profile_or_none else [str(i) for i in range(probs.shape[1])]
    frame["predicted_class"] = [names[i] for i in pred]
    if profile_or_none is not None:
        pcs = profile_or_none.project(embeddings) if len(embeddings) else np.zeros((0, profile_or_none.n_components))
        for i, col in enumerate(pc_columns(profile_or_none.n_components)):
            frame[col] = pcs[:, i]
    return frame


def _stream_views(
    streams: list[SplitBatches], embed_fn: EmbedFn, n: int
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, np.ndarray]:
    """Probabilities, embeddings, image features (rows in split then index order) and the thumbnails of
    ``streams`` read batch by batch: the same arrays as on the concatenated images, one batch in memory."""
    pick = np.random.default_rng(0).permutation(n)[:N_THUMBNAILS]  # rows whose pixels the report shows
    slot = {int(row): i for i, row in enumerate(pick)}
    thumbs = np.zeros((len(pick), *streams[0].image_shape), dtype=np.uint8)
    probs: list[np.ndarray] = []
    embs: list[np.ndarray] = []
    frames: list[pd.DataFrame] = []
    rows: list[np.ndarray] = []
    offset = 0
    for stream in streams:
        for b in stream:
            p, e = embed_fn(b.images)
            probs.append(np.asarray(p))
            embs.append(np.asarray(e, dtype=np.float64))
            frames.append(image_features(b.images))
            rows.append(b.positions + offset)
            for j, row in enumerate(rows[-1]):
                if int(row) in slot:
                    thumbs[slot[int(row)]] = b.images[j]
        offset += len(stream)
    order = np.argsort(np.concatenate(rows), kind="stable")
    frame = pd.concat(frames, ignore_index=True).iloc[order].reset_index(drop=True)
    return np.concatenate(probs)[order], np.concatenate(embs)[order], frame, thumbs


def build_reference(
    prepared_dir: Path,
    embed_fn: EmbedFn,
    cfg: MonitoringConfig,
    splits: tuple[str, ...] | None = None,
    operating_point: OperatingPoint | None = None,
) -> ReferenceProfile:
    """Features + model view of held-out images (``splits``, default ``cfg.reference_splits``); the PCA of the
    embeddings and the ATC threshold are fitted on them too. ``operating_point`` (the model's stored decision)
    makes the predicted classes, their counts and the accuracy those of the served decision, not argmax."""
    from sklearn.decomposition import PCA

    splits = tuple(splits or cfg.reference_splits)
    manifest = read_manifest(prepared_dir)
    class_names = list(manifest["class_names"])
    streams = [split_batches(prepared_dir, split) for split in splits]  # one batch of pixels in memory at a time
    n = sum(len(s) for s in streams)
    if n < cfg.min_window:
        raise DataError(
            f"{prepared_dir}: the reference splits {list(splits)} hold only {n} images; a drift reference needs "
            f"at least monitoring.min_window={cfg.min_window}: give the val split more images or add a split the "
            "model did not train on to monitoring.reference_splits"
        )
    if "train" in splits:
        log.warning("the drift reference includes the train split: the model has fit those images (false alarms)")
    y = np.concatenate([s.labels for s in streams])
    split_of = [split for split, s in zip(splits, streams, strict=True) for _ in range(len(s))]
    probs, emb, frame, thumbnails = _stream_views(streams, embed_fn, n)
    emb = np.asarray(emb, dtype=np.float64)
    mean, scale = emb.mean(axis=0), emb.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    k = int(min(cfg.pca_components, emb.shape[1], len(emb) - 1))
    pca = PCA(n_components=k, random_state=0).fit((emb - mean) / scale)
    decide = operating_point.predict if operating_point else (lambda p: np.asarray(p).argmax(axis=1))
    correct = decide(probs) == y  # the served decision's accuracy (what labelled windows measure)
    profile = ReferenceProfile(
        frame=frame,
        emb_mean=mean,
        emb_scale=scale,
        components=pca.components_,
        explained_variance=np.maximum(pca.explained_variance_, 1e-12),
        class_names=class_names,
        atc_threshold=fit_atc_threshold(probs.max(axis=1), correct),
        reference_accuracy=float(correct.mean()),
        image_size=int(streams[0].image_shape[0]),
        channels=int(streams[0].image_shape[2]),
        thumbnails=thumbnails,
        operating_point=operating_point,
    )
    profile.frame = pd.concat([profile.frame, model_view(profile, probs, emb)], axis=1)
    profile.frame["label"] = [class_names[i] for i in y]
    profile.frame["split"] = split_of
    profile.meta = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "prepared_dir": str(prepared_dir),
        "data_version": manifest.get("data_version"),
        "splits": list(splits),
        "rows": len(profile.frame),
    }
    return profile
