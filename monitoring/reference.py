"""The reference profile: what the model's training data looked like, stored with the model version.

Built at training time from the train+val images (:func:`build_reference`), saved as a folder
(``reference.parquet`` + ``pca.npz`` + ``profile.json``) that the registry logs as an MLflow artifact
of the model version, so a new champion brings its own reference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from components.data.dataset import load_split, read_manifest
from components.errors import DataError
from medpipe.config import MonitoringConfig
from monitoring.features import image_features

#: (probabilities (N, K), embeddings (N, D)) for uint8 (N, H, W, C) images: ONNX session or PyTorch model.
EmbedFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
FILES = ("reference.parquet", "pca.npz", "profile.json")
CALIBRATION_BINS = 10


def pc_columns(n: int) -> list[str]:
    return [f"pc_{i}" for i in range(n)]


@dataclass
class ReferenceProfile:
    """Reference rows (features, PCA components, prediction, confidence, label, split) + the fitted projection."""

    frame: pd.DataFrame
    emb_mean: np.ndarray  # (D,) standardisation of raw embeddings before PCA
    emb_scale: np.ndarray  # (D,)
    components: np.ndarray  # (k, D) PCA axes
    explained_variance: np.ndarray  # (k,) for whitening
    class_names: list[str]
    calibration: list[float]  # accuracy per confidence bin (CALIBRATION_BINS bins over [1/K, 1])
    reference_accuracy: float | None
    image_size: int
    channels: int
    meta: dict = field(default_factory=dict)

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
        """CBPE-style label-free accuracy: mean calibrated P(correct | max probability)."""
        if len(confidence) == 0:
            return None
        return float(np.mean(np.asarray(self.calibration)[_bins(confidence, len(self.class_names))]))

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
            "calibration": self.calibration,
            "reference_accuracy": self.reference_accuracy,
            "image_size": self.image_size,
            "channels": self.channels,
            "meta": self.meta,
        }
        (directory / "profile.json").write_text(json.dumps(profile, indent=2) + "\n")
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
        with np.load(directory / "pca.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        return cls(frame=pd.read_parquet(directory / "reference.parquet"), **arrays, **profile)


def _bins(confidence: np.ndarray, num_classes: int) -> np.ndarray:
    low = 1.0 / max(num_classes, 1)
    pos = (np.asarray(confidence, dtype=np.float64) - low) / max(1.0 - low, 1e-9)
    return np.clip((pos * CALIBRATION_BINS).astype(int), 0, CALIBRATION_BINS - 1)


def _calibrate(confidence: np.ndarray, correct: np.ndarray, num_classes: int) -> list[float]:
    """Per-bin accuracy (empty bins: the bin's mean confidence; a shrink towards it for sparse bins)."""
    bins = _bins(confidence, num_classes)
    low = 1.0 / max(num_classes, 1)
    centres = low + (np.arange(CALIBRATION_BINS) + 0.5) * (1.0 - low) / CALIBRATION_BINS
    out = []
    for b in range(CALIBRATION_BINS):
        sel = bins == b
        n = int(sel.sum())
        prior = centres[b] if n == 0 else float(confidence[sel].mean())
        out.append(float((correct[sel].sum() + 5 * prior) / (n + 5)))  # 5 pseudo-counts of the confidence itself
    return out


def model_view(profile_or_none: ReferenceProfile | None, probs: np.ndarray, embeddings: np.ndarray) -> pd.DataFrame:
    """Predicted class name, max probability and (given a profile) the PCA components of each row."""
    probs = np.asarray(probs, dtype=np.float64)
    frame = pd.DataFrame({"confidence": probs.max(axis=1) if len(probs) else np.zeros(0)})
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=int)
    names = profile_or_none.class_names if profile_or_none else [str(i) for i in range(probs.shape[1])]
    frame["predicted_class"] = [names[i] for i in pred]
    if profile_or_none is not None:
        pcs = profile_or_none.project(embeddings) if len(embeddings) else np.zeros((0, profile_or_none.n_components))
        for i, col in enumerate(pc_columns(profile_or_none.n_components)):
            frame[col] = pcs[:, i]
    return frame


def build_reference(
    prepared_dir: Path, embed_fn: EmbedFn, cfg: MonitoringConfig, splits: tuple[str, ...] = ("train", "val")
) -> ReferenceProfile:
    """Features + model view of the train/val images; PCA fitted here; calibration from the val split."""
    from sklearn.decomposition import PCA

    manifest = read_manifest(prepared_dir)
    class_names = list(manifest["class_names"])
    images, labels, split_of = [], [], []
    for split in splits:
        data = load_split(prepared_dir, split)
        images.append(data.images)
        labels.append(data.labels)
        split_of += [split] * len(data)
    x, y = np.concatenate(images), np.concatenate(labels)
    if len(x) < cfg.min_window:
        raise DataError(f"{prepared_dir}: only {len(x)} reference images; need at least monitoring.min_window")
    probs, emb = embed_fn(x)
    emb = np.asarray(emb, dtype=np.float64)
    mean, scale = emb.mean(axis=0), emb.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    k = int(min(cfg.pca_components, emb.shape[1], len(emb) - 1))
    pca = PCA(n_components=k, random_state=0).fit((emb - mean) / scale)
    frame = image_features(x)
    view_profile = ReferenceProfile(
        frame=frame,
        emb_mean=mean,
        emb_scale=scale,
        components=pca.components_,
        explained_variance=np.maximum(pca.explained_variance_, 1e-12),
        class_names=class_names,
        calibration=[],
        reference_accuracy=None,
        image_size=int(x.shape[1]),
        channels=int(x.shape[3]),
    )
    frame = pd.concat([frame, model_view(view_profile, probs, emb)], axis=1)
    frame["label"] = [class_names[i] for i in y]
    frame["split"] = split_of
    correct = probs.argmax(axis=1) == y
    held_out = frame["split"].to_numpy() != "train"  # calibrate on data the model did not fit
    if held_out.sum() < 20:
        held_out = np.ones(len(frame), dtype=bool)
    view_profile.frame = frame
    view_profile.calibration = _calibrate(probs.max(axis=1)[held_out], correct[held_out], len(class_names))
    view_profile.reference_accuracy = float(correct[held_out].mean())
    view_profile.meta = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "prepared_dir": str(prepared_dir),
        "data_version": manifest.get("data_version"),
        "splits": list(splits),
        "rows": len(frame),
    }
    return view_profile
