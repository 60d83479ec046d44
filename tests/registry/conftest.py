"""Model folders trained by the train stage + their ONNX exports (with an operating point chosen on validation):
weak / good / bad (trained on swapped classes); see tests/helpers/artefacts.py."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.artefacts import BAD, GOOD, WEAK


@dataclass(frozen=True)
class Trained:
    model_dir: Path
    onnx_path: Path


@pytest.fixture(scope="session")
def trained(
    trained_cnn: Callable[..., Path],
    served_cnn: Callable[[Path], Path],
    prepared_breastmnist: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Trained]:
    """Measured on BreastMNIST test: weak AUC ~0.68, good ~0.82, bad ~0.32.

    Each export is copied and gets its operating point (registry defaults: sensitivity 0.9 on validation), as the
    export stage does."""
    from components.evaluation.served import stamp_operating_point
    from medpipe.config import PipelineConfig

    cfg = PipelineConfig().with_overrides({"registry.positive_class": "malignant"})
    out = {}
    for kind, recipe in (("weak", WEAK), ("good", GOOD), ("bad", BAD)):
        model_dir = trained_cnn(recipe)
        served = tmp_path_factory.mktemp(f"served-{kind}")
        shutil.copytree(served_cnn(model_dir), served, dirs_exist_ok=True)
        stamp_operating_point(served / "model.onnx", prepared_breastmnist, cfg.registry, cfg.export)
        out[kind] = Trained(model_dir, served / "model.onnx")
    return out
