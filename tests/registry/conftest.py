"""Real trained model folders (good / deliberately bad / better) + their ONNX files, and a real MLflow store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from medpipe.config import PipelineConfig

CLASS_NAMES = ["malignant", "normal_or_benign"]


@dataclass(frozen=True)
class Trained:
    model_dir: Path
    onnx_path: Path


def _train(prepared: Path, out: Path, *, epochs: int, lr: float, max_steps: int | None, seed: int) -> Trained:
    from components.data.dataset import load_split
    from components.models.artifacts import save_model_dir
    from components.models.inference import InferenceModel
    from components.models.registry import create_model
    from components.preprocessing import Preprocessing

    torch.manual_seed(seed)
    train = load_split(prepared, "train")
    x = torch.from_numpy(train.images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    mean, std = float(x.mean()), float(x.std())
    x = (x - mean) / std
    y = torch.from_numpy(train.labels)
    kwargs = {"name": "cnn", "num_classes": 2, "in_channels": 1, "small_input": True, "dropout": 0.1}
    net = create_model(**kwargs)
    opt = torch.optim.AdamW(net.parameters(), lr=lr)
    weight = torch.tensor(len(y) / (2 * np.bincount(y.numpy(), minlength=2)), dtype=torch.float32)
    steps = 0
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(y), generator=gen).split(64):
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
    net.eval()
    pre = Preprocessing(
        image_size=28,
        train_image_size=28,
        channels=1,
        mean=[mean],
        std=[std],
        class_names=CLASS_NAMES,
        model_name="cnn",
        data_version="test-data-v1",
    )
    save_model_dir(out, net, kwargs, pre)
    onnx_path = out / "model.onnx"
    model = InferenceModel(net, pre).eval()
    torch.onnx.export(
        model,
        (torch.zeros(2, 1, 28, 28),),
        str(onnx_path),
        dynamo=True,
        external_data=False,
        input_names=["pixels"],
        output_names=["probs", "embedding"],
        dynamic_shapes=({0: "batch"},),
    )
    return Trained(out, onnx_path)


@pytest.fixture(scope="session")
def trained(prepared_breastmnist: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Trained]:
    """good: a few epochs; bad: one step at a wrong lr; better: longer at a lower lr.

    Measured on BreastMNIST test: good AUC 0.878 / ECE 0.07, better AUC 0.879 / ECE 0.08, bad AUC 0.5.
    """
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("models")
    return {
        "good": _train(prepared_breastmnist, root / "good", epochs=6, lr=2e-3, max_steps=None, seed=0),
        "bad": _train(prepared_breastmnist, root / "bad", epochs=1, lr=5.0, max_steps=1, seed=1),
        "better": _train(prepared_breastmnist, root / "better", epochs=8, lr=1e-3, max_steps=None, seed=0),
    }


@pytest.fixture
def cfg() -> PipelineConfig:
    return PipelineConfig().with_overrides(
        {
            "registry.model_name": "test-classifier",
            "registry.positive_class": "malignant",
            "registry.bootstrap_samples": 200,
            "registry.retries": 1,
            "registry.retry_backoff_s": 0.1,
        }
    )


@pytest.fixture
def settings(medpipe_home: Path):
    from medpipe.settings import get_settings

    s = get_settings()
    assert s.tracking_uri.startswith("sqlite:///") and str(medpipe_home) in s.tracking_uri
    return s
