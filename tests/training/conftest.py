"""Shared pieces for the training tests: a shrunken real config and an isolated state folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from medpipe.config import PipelineConfig, TrainingConfig, load_config

REPO_ROOT = Path(__file__).resolve().parents[2]
PARAMS = REPO_ROOT / "params.yaml"


def smoke_cfg(*overrides: str) -> PipelineConfig:
    """The real params.yaml smoke profile, shrunk further by ``overrides``."""
    return load_config(PARAMS, profile="smoke", overrides=["train.num_workers=0", *overrides])


def smoke_training(*overrides: str) -> TrainingConfig:
    """The training view of :func:`smoke_cfg` (what search and training take)."""
    return smoke_cfg(*overrides).for_training()


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture
def settings(medpipe_home: Path, empty_mlflow_db):
    from medpipe.settings import get_settings

    empty_mlflow_db(medpipe_home)  # the default store, sqlite:///<home>/mlflow.db, already migrated
    return get_settings()
