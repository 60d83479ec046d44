"""BreastMNIST (the real ``breastmnist.npz``) written in the canonical prepared layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medpipe.imaging.preprocessing import Preprocessing

CLASS_NAMES = ["malignant", "normal_or_benign"]


def write_prepared_breastmnist(npz_path: Path, out_dir: Path) -> Path:
    """``out_dir/{train,val,test}.npz`` (uint8 (N, 28, 28, 1), int64 labels) + manifest.json; returns ``out_dir``."""
    from components.data.dataset import Split, write_manifest, write_split

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    with np.load(npz_path) as npz:
        for split in ("train", "val", "test"):
            images = npz[f"{split}_images"][..., None]
            labels = npz[f"{split}_labels"].ravel().astype(np.int64)
            write_split(out_dir, split, Split(images, labels))
            counts[split] = {n: int((labels == i).sum()) for i, n in enumerate(CLASS_NAMES)}
    write_manifest(out_dir, {"class_names": CLASS_NAMES, "counts": counts, "image_size": 28, "channels": 1})
    return out_dir


def preprocessing(
    size: int = 28,
    channels: int = 1,
    *,
    mean: float = 0.5,
    std: float = 0.25,
    class_names: tuple[str, ...] = ("a", "b"),
    model_name: str = "cnn",
) -> Preprocessing:
    """A preprocessing record for hand-made model folders and image tests (same mean/std on every channel)."""
    return Preprocessing(
        image_size=size,
        train_image_size=size,
        channels=channels,
        mean=[mean] * channels,
        std=[std] * channels,
        class_names=list(class_names),
        model_name=model_name,
    )
