"""Shared by the benchmarks: a randomly initialised model folder (no downloads), exported to ONNX."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from components.deploy.export import export_onnx
from components.models.artifacts import save_model_dir
from components.models.registry import create_model
from components.preprocessing import Preprocessing
from medpipe.config import ExportConfig


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
