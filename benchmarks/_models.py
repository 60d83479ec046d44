"""Shared by the benchmarks: a randomly initialised model folder (no downloads) exported to ONNX, and the quick
CNN trained on a prepared BreastMNIST by the train stage (as the tests train it: tests/helpers/artefacts.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from components.deploy.export import export_onnx
from components.models.artifacts import save_model_dir
from components.models.inference import InferenceModel, predict
from components.models.registry import create_model
from medpipe.config import ExportConfig
from tests.helpers.data import preprocessing, write_prepared_breastmnist

__all__ = ["make_served_folder", "quick_embed_fn", "write_prepared_breastmnist"]


def make_served_folder(root: Path, name: str, size: int, channels: int, seed: int) -> Path:
    """``root/model`` (model.ckpt ...) and ``root/served`` (model.onnx + preprocessing.json)."""
    torch.manual_seed(seed)
    kwargs = {"name": name, "num_classes": 2, "in_channels": channels, "small_input": size <= 64}
    net = create_model(**kwargs).eval()
    pre = preprocessing(size, channels, model_name=name)
    model_dir = save_model_dir(root / "model", net, kwargs, pre)
    served = root / "served"
    export_onnx(model_dir, served / "model.onnx", ExportConfig())
    shutil.copy(model_dir / "preprocessing.json", served / "preprocessing.json")
    return served


def quick_embed_fn(prepared: Path, epochs: int, seed: int = 0):  # noqa: ANN201 - uint8 NHWC -> (probs, emb)
    """The smoke profile's CNN trained ``epochs`` on ``prepared`` by ``train_model`` (MLflow store and run folders
    beside ``prepared``); returns its embed_fn (PyTorch path)."""
    from components.models.artifacts import load_model_dir
    from medpipe.settings import Settings
    from tests.helpers.artefacts import Recipe, train

    recipe = Recipe((f"train.epochs={epochs}", f"train.seed={seed}", "model.dropout=0.2"))
    work = Path(prepared).parent / f"quick-cnn-{epochs}-{seed}"
    model_dir = train(recipe, Path(prepared), Settings(home=work / "state"), work)
    model = InferenceModel(*load_model_dir(model_dir)).eval()
    return lambda images: predict(model, images)
