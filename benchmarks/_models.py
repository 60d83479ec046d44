"""Shared by the benchmarks: a randomly initialised model folder (no downloads) exported to ONNX, and the quick
CNN trained on a prepared BreastMNIST (the same one the tests train: tests/helpers/models.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from components.deploy.export import export_onnx
from components.models.artifacts import save_model_dir
from components.models.inference import InferenceModel, predict
from components.models.registry import create_model
from medpipe.config import ExportConfig
from medpipe.imaging.preprocessing import Preprocessing
from tests.helpers.data import write_prepared_breastmnist
from tests.helpers.models import Recipe, train_cnn

__all__ = ["make_served_folder", "quick_embed_fn", "write_prepared_breastmnist"]


def make_served_folder(root: Path, name: str, size: int, channels: int, seed: int) -> Path:
    """``root/model`` (model.pt ...) and ``root/served`` (model.onnx + preprocessing.json)."""
    torch.manual_seed(seed)
    kwargs = {"name": name, "num_classes": 2, "in_channels": channels, "small_input": size <= 64}
    net = create_model(**kwargs).eval()
    pre = Preprocessing(
        image_size=size,
        train_image_size=size,
        channels=channels,
        mean=[0.5] * channels,
        std=[0.25] * channels,
        class_names=["a", "b"],
        model_name=name,
    )
    model_dir = save_model_dir(root / "model", net, kwargs, pre)
    served = root / "served"
    export_onnx(model_dir, served / "model.onnx", ExportConfig())
    shutil.copy(model_dir / "preprocessing.json", served / "preprocessing.json")
    return served


def quick_embed_fn(prepared: Path, epochs: int, seed: int = 0):  # noqa: ANN201 - uint8 NHWC -> (probs, emb)
    """The quick CNN trained ``epochs`` on ``prepared``'s train split; returns its embed_fn (PyTorch path)."""
    net, pre = train_cnn(prepared, Recipe(epochs=epochs, lr=2e-3, seed=seed, dropout=0.2))
    model = InferenceModel(net, pre).eval()
    return lambda images: predict(model, images)
