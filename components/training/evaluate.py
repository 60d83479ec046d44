"""Evaluate a trained model folder on a split through the deployable path (InferenceModel: raw pixels in)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from components.data.dataset import Split
from components.models.artifacts import load_model_dir
from components.models.inference import InferenceModel, predict
from components.training.module import make_metrics


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
    p, y = torch.from_numpy(probs), torch.from_numpy(split.labels)
    k = len(pre.class_names)
    metrics = {name: float(v) for name, v in make_metrics(k)(p, y).items()}
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (split.labels, probs.argmax(1)), 1)
    return Evaluation(metrics, confusion, probs, list(pre.class_names))
