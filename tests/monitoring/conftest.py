"""Monitoring fixtures: the session's served test model (trained by the train stage's engine, exported to ONNX by
the deploy stage's code: tests/helpers/artefacts.py), its embed function, and a reference profile of real
BreastMNIST built through it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medpipe.config import MonitoringConfig


@pytest.fixture(scope="session")
def embed_fn(served_cnn_dir: Path, engine_settings):
    """uint8 (N, H, W, 1) -> (probs, embeddings) through the ONNX graph of the session's ``GOOD`` model (its
    ``embedding`` output), as ``medpipe monitor`` and the monitoring flow embed a window."""
    from components.serving.model_source import load_model
    from medpipe.config import ExportConfig
    from monitoring.check import onnx_embed_fn

    return onnx_embed_fn(load_model(str(served_cnn_dir), ExportConfig(), engine_settings))


@pytest.fixture(scope="session")
def mon_cfg() -> MonitoringConfig:
    from medpipe.config import load_config

    return load_config(Path(__file__).resolve().parents[2] / "params.yaml").monitoring


@pytest.fixture(scope="session")
def reference(prepared_breastmnist: Path, embed_fn, mon_cfg):
    """The reference profile of the val split (held out from training, as the training flow builds it)."""
    from monitoring.reference import build_reference

    return build_reference(prepared_breastmnist, embed_fn, mon_cfg)


@pytest.fixture(scope="session")
def test_images(prepared_breastmnist: Path) -> np.ndarray:
    """The test split (156 images): held out from training like the val reference, so iid with it for the model."""
    from components.data.dataset import load_split

    return load_split(prepared_breastmnist, "test").images


@pytest.fixture(scope="session")
def train_images(prepared_breastmnist: Path) -> np.ndarray:
    """The train split: the model fit these, so its outputs on them are not iid with the (val) reference."""
    from components.data.dataset import load_split

    return load_split(prepared_breastmnist, "train").images
