"""Shared pieces for the training tests: a shrunken real config and an isolated state folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _few_threads() -> None:
    torch.set_num_threads(2)


@pytest.fixture
def settings(medpipe_home: Path, empty_mlflow_db):
    from medpipe.settings import get_settings

    empty_mlflow_db(medpipe_home)  # the default store, sqlite:///<home>/mlflow.db, already migrated
    return get_settings()
