"""Real trained model folders (good / deliberately bad / better) + their ONNX exports, from the session's quick CNN."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.models import BAD, BETTER, GOOD


@dataclass(frozen=True)
class Trained:
    model_dir: Path
    onnx_path: Path


@pytest.fixture(scope="session")
def trained(trained_cnn: Callable[..., Path], served_cnn: Callable[[Path], Path]) -> dict[str, Trained]:
    """good: a few epochs; bad: one step at a wrong lr; better: longer at a lower lr.

    Measured on BreastMNIST test: good AUC 0.878 / ECE 0.07, better AUC 0.879 / ECE 0.08, bad AUC 0.5.
    """
    models = {kind: trained_cnn(recipe) for kind, recipe in (("good", GOOD), ("bad", BAD), ("better", BETTER))}
    return {kind: Trained(d, served_cnn(d) / "model.onnx") for kind, d in models.items()}
