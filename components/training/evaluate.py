"""Evaluate a trained model folder on a split through the deployable path (InferenceModel: raw pixels in)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.data.dataset import Split
from components.models.artifacts import load_model_dir
from components.models.inference import InferenceModel, predict
from medpipe.metrics import argmax_point, classification_metrics


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]  # auc, accuracy, balanced_accuracy, precision, recall, f1, ece
    confusion: np.ndarray  # (K, K), rows = true class
    probs: np.ndarray  # (N, K)
    class_names: list[str]


def evaluate_model_dir(model_dir: Path, split: Split) -> Evaluation:
    """Metrics of ``model_dir`` on ``split`` (the same definitions as the training-time test metrics)."""
    net, pre = load_model_dir(model_dir)
    probs, _ = predict(InferenceModel(net, pre), split.images)
    k = len(pre.class_names)
    op = argmax_point(pre.class_names, k - 1 if k == 2 else None, "argmax")
    metrics = classification_metrics(probs, split.labels, pre.class_names, op)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (split.labels, probs.argmax(1)), 1)
    return Evaluation(metrics, confusion, probs, list(pre.class_names))
