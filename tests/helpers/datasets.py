"""Datasets that are not BreastMNIST as shipped, built from it (renamed, recoloured, as DICOM) for the
"--data alone" tests. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers.dicom import write_dicom

TINTS = np.array([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.2, 1.0], [1.0, 1.0, 0.1], [0.1, 1.0, 1.0]])


def _breastmnist(npz_path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(npz_path) as npz:
        images = np.concatenate([npz[f"{s}_images"] for s in ("train", "val", "test")])
        labels = np.concatenate([npz[f"{s}_labels"].ravel() for s in ("train", "val", "test")])
    return images, labels


def binary_csv(npz_path: Path, out: Path, n: int = 400) -> Path:
    """A CSV manifest (``path,label``) of BreastMNIST PNGs whose classes are called 'lesion' and 'clear'."""
    images, labels = _breastmnist(npz_path)
    (out / "images").mkdir(parents=True)
    lines = ["path,label"]
    for i in range(n):
        Image.fromarray(images[i]).save(out / "images" / f"{i:04d}.png")
        lines.append(f"images/{i:04d}.png,{'lesion' if labels[i] == 0 else 'clear'}")
    (out / "labels.csv").write_text("\n".join(lines) + "\n")
    return out / "labels.csv"


def five_class_rgb_folder(npz_path: Path, out: Path, per_class: int = 80) -> Path:
    """An ImageFolder of RGB copies of BreastMNIST relabelled into 5 classes by a colour tint (learnable)."""
    images, _ = _breastmnist(npz_path)
    for k, tint in enumerate(TINTS):
        folder = out / f"tint{k}"
        folder.mkdir(parents=True)
        for j in range(per_class):
            grey = images[k * per_class + j].astype(np.float64)[..., None]
            rgb = np.clip(grey * tint + 20, 0, 255).astype(np.uint8)
            Image.fromarray(rgb).save(folder / f"{j:03d}.png")
    return out


def dicom_folder(npz_path: Path, out: Path, patients: int = 50, per_patient: int = 8) -> Path:
    """An ImageFolder of 16-bit DICOM files (rescale + window, both MONOCHROMEs), several images per patient,
    every patient in one class; PatientName/PatientID are the PHI strings of :mod:`helpers.dicom`."""
    images, labels = _breastmnist(npz_path)
    by_class = {c: np.flatnonzero(labels == c) for c in (0, 1)}
    for p in range(patients):
        cls = p % 2
        folder = out / ("mass" if cls == 0 else "normal")
        folder.mkdir(parents=True, exist_ok=True)
        for j in range(per_patient):
            img = images[by_class[cls][(p // 2) * per_patient + j]]
            stored = (img.astype(np.uint16) * 16 + 24).astype(np.uint16)  # 12-bit values, 16-bit container
            photometric = "MONOCHROME1" if j % 2 else "MONOCHROME2"
            if photometric == "MONOCHROME1":
                stored = (4095 + 48 - stored).astype(np.uint16)  # same picture once inverted back
            write_dicom(
                folder / f"p{p:02d}_{j}.dcm",
                stored,
                photometric=photometric,
                rescale=(1.0, -24.0),
                window=(2048.0, 4096.0),
                patient=f"{p:04d}",
            )
    return out
