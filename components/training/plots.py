"""PNG figures logged with training runs: augmentation preview, confusion matrix, ROC curves, search history."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import optuna


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def augmentation_preview(before: np.ndarray, after: np.ndarray, path: Path, title: str = "") -> Path:
    """Grid PNG: row pairs of the same training images before (top) and after (bottom) augmentation.

    ``before``/``after``: float (N, C, H, W) on the 0..1 scale.
    """
    plt = _pyplot()
    n = len(before)
    cols = min(n, 8)
    rows = 2 * ((n + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        r, c = 2 * (i // cols), i % cols
        for k, img in enumerate((before[i], after[i])):
            show = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
            axes[r + k, c].imshow(np.clip(show, 0, 1), cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1)
        if c == 0:
            axes[r, c].set_title("before", fontsize=7, loc="left")
            axes[r + 1, c].set_title("after", fontsize=7, loc="left")
    fig.suptitle(title or "augmentation preview", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion_matrix_png(cm: np.ndarray, class_names: list[str], path: Path) -> Path:
    """Confusion matrix (rows = true class) with counts and row-normalised shading."""
    plt = _pyplot()
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2.5, 1.2 * len(class_names) + 2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def roc_curves(probs: np.ndarray, labels: np.ndarray, class_names: list[str]) -> dict[str, dict[str, list[float]]]:
    """One-vs-rest ROC points per class: {class: {fpr, tpr}} (binary: the last class only)."""
    from sklearn.metrics import roc_curve

    classes = [len(class_names) - 1] if len(class_names) == 2 else range(len(class_names))
    out = {}
    for k in classes:
        if (labels == k).all() or (labels != k).all():
            continue
        fpr, tpr, _ = roc_curve(labels == k, probs[:, k])
        out[class_names[k]] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return out


def roc_png(curves: dict[str, dict[str, list[float]]], path: Path, auc: float | None = None) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for name, c in curves.items():
        ax.plot(c["fpr"], c["tpr"], label=name)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC (test AUC {auc:.3f})" if auc is not None else "ROC")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _optuna_png(plot: Any, study: optuna.Study, path: Path, size: tuple[float, float]) -> Path:
    plt = _pyplot()
    import optuna

    with warnings.catch_warnings():  # the matplotlib backend is flagged experimental; the plot is fine
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        ax = plot(study)
    fig = ax.figure
    fig.set_size_inches(*size)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def search_history_png(study: optuna.Study, path: Path) -> Path:
    """Optuna's optimisation-history plot (objective per trial + best so far)."""
    from optuna.visualization.matplotlib import plot_optimization_history

    return _optuna_png(plot_optimization_history, study, path, (7, 4))


def parallel_coordinates_png(study: optuna.Study, path: Path) -> Path:
    """Optuna's parallel-coordinates plot: every searched parameter against the objective, one line a trial."""
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    return _optuna_png(plot_parallel_coordinate, study, path, (9, 4))


def importances_png(importances: dict[str, float], path: Path) -> Path:
    plt = _pyplot()
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(names) + 1.2))
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance (fANOVA)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
