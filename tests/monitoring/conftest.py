"""Monitoring fixtures: a random-init CNN (model folder + embed_fn) and a reference profile of real BreastMNIST."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medpipe.config import MonitoringConfig


@pytest.fixture(scope="session")
def random_cnn_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random-init small CNN as a model folder (read-only): drift checks need no trained weights."""
    import torch

    from components.models.artifacts import save_model_dir
    from components.models.registry import create_model
    from tests.helpers.data import CLASS_NAMES, preprocessing

    torch.manual_seed(0)
    kwargs = {"name": "cnn", "num_classes": 2, "in_channels": 1, "small_input": True}
    pre = preprocessing(mean=0.33, std=0.2, class_names=tuple(CLASS_NAMES))
    return save_model_dir(tmp_path_factory.mktemp("random-cnn"), create_model(**kwargs), kwargs, pre)


@pytest.fixture(scope="session")
def embed_fn(random_cnn_dir: Path):
    """uint8 (N, H, W, 1) -> (probs, embeddings) through :func:`random_cnn_dir` (the PyTorch path)."""
    import torch

    from components.models.artifacts import load_model_dir
    from components.models.inference import InferenceModel, predict

    torch.set_num_threads(2)
    model = InferenceModel(*load_model_dir(random_cnn_dir)).eval()
    return lambda images: predict(model, images)


@pytest.fixture(scope="session")
def mon_cfg() -> MonitoringConfig:
    from medpipe.config import load_config

    return load_config(Path(__file__).resolve().parents[2] / "params.yaml").monitoring


@pytest.fixture(scope="session")
def reference(prepared_breastmnist: Path, embed_fn, mon_cfg):
    from monitoring.reference import build_reference

    return build_reference(prepared_breastmnist, embed_fn, mon_cfg)


@pytest.fixture(scope="session")
def test_images(prepared_breastmnist: Path) -> np.ndarray:
    from components.data.dataset import load_split

    return load_split(prepared_breastmnist, "test").images


@pytest.fixture(scope="session")
def train_images(prepared_breastmnist: Path) -> np.ndarray:
    """Images outside the (val) reference; iid with it for the random-init model, which fit none of them."""
    from components.data.dataset import load_split

    return load_split(prepared_breastmnist, "train").images
