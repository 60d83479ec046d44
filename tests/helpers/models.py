"""The quick CNN that tests and benchmarks train on a prepared BreastMNIST (plain torch loop, CPU, seconds).

A :class:`Recipe` says how (epochs, lr, seed, dropout; ``max_steps`` for a deliberately undertrained model);
:func:`train_cnn_dir` writes a real model folder (``save_model_dir``) and :func:`export_served_dir` its ONNX export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from components.models.registry import Classifier
from medpipe.imaging.preprocessing import Preprocessing

DATA_VERSION = "test-data-v1"


@dataclass(frozen=True)
class Recipe:
    """How to train the quick CNN (hashable: fixtures cache one model per recipe)."""

    epochs: int = 6
    lr: float = 2e-3
    seed: int = 0
    max_steps: int | None = None
    dropout: float = 0.1

    def model_kwargs(self) -> dict[str, Any]:
        """``create_model`` arguments (saved as the folder's model_config.json)."""
        return {"name": "cnn", "num_classes": 2, "in_channels": 1, "small_input": True, "dropout": self.dropout}


GOOD = Recipe()  # test AUC ~0.88, ECE ~0.07 on BreastMNIST
BETTER = Recipe(epochs=8, lr=1e-3)  # about as good as GOOD (a tie for the promotion gate)
BAD = Recipe(epochs=1, lr=5.0, seed=1, max_steps=1)  # one step at a wrong lr: AUC ~0.5
WEAK = Recipe(max_steps=4)  # four steps: AUC ~0.68, ECE ~0.06: a first champion that GOOD clearly beats


def train_cnn(prepared: Path, recipe: Recipe = Recipe()) -> tuple[Classifier, Preprocessing]:
    """Train the small CNN on ``prepared``'s train split (class-balanced cross-entropy, AdamW, batches of 64).

    Inputs are normalised with the train split's own mean/std (0..1 scale), which the returned preprocessing
    records. Deterministic for a given recipe. Returns the network in eval mode and its preprocessing.
    """
    from components.data.dataset import load_split, read_manifest
    from components.models.registry import create_model

    torch.manual_seed(recipe.seed)
    train = load_split(prepared, "train")
    x = torch.from_numpy(train.images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    mean, std = float(x.mean()), float(x.std())
    x = (x - mean) / std
    y = torch.from_numpy(train.labels)
    net = create_model(**recipe.model_kwargs())
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.lr)
    weight = torch.tensor(len(y) / (2 * np.bincount(y.numpy(), minlength=2)), dtype=torch.float32)
    gen = torch.Generator().manual_seed(recipe.seed)
    steps = 0
    for _ in range(recipe.epochs):
        net.train()
        for idx in torch.randperm(len(y), generator=gen).split(64):
            if recipe.max_steps is not None and steps >= recipe.max_steps:
                break
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
    pre = Preprocessing(
        image_size=28,
        train_image_size=28,
        channels=1,
        mean=[mean],
        std=[std],
        class_names=list(read_manifest(prepared)["class_names"]),
        model_name="cnn",
        data_version=DATA_VERSION,
    )
    return net.eval(), pre


def train_cnn_dir(prepared: Path, out_dir: Path, recipe: Recipe = Recipe()) -> Path:
    """:func:`train_cnn`, saved as a model folder (model.pt, model_config.json, preprocessing.json) at ``out_dir``."""
    from components.models.artifacts import save_model_dir

    net, pre = train_cnn(prepared, recipe)
    return save_model_dir(out_dir, net, recipe.model_kwargs(), pre)


def export_served_dir(model_dir: Path, out_dir: Path) -> Path:
    """Export ``model_dir`` as deploy does: ``out_dir/model.onnx`` + ``preprocessing.json``; returns ``out_dir``."""
    from components.deploy.export import export_onnx
    from medpipe.config import ExportConfig

    export_onnx(model_dir, Path(out_dir) / "model.onnx", ExportConfig())
    return Path(out_dir)


def register_onnx_folder(folder: Path, name: str, tracking_uri: str, tags: dict[str, str] | None = None) -> str:
    """Log a served folder the way the registry lays it out (onnx flavour + preprocessing.json), register it
    under ``name`` and return the new version."""
    import mlflow
    import onnx

    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run():
        mlflow.log_metric("test_auc", 0.81)
        info = mlflow.onnx.log_model(
            onnx.load(str(folder / "model.onnx")),
            name="model",
            registered_model_name=name,
            extra_files=[str(folder / "preprocessing.json")],
            save_as_external_data=False,
        )
    version = str(info.registered_model_version)
    for key, value in (tags or {}).items():
        mlflow.MlflowClient(tracking_uri).set_model_version_tag(name, version, key, value)
    return version
