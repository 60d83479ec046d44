from __future__ import annotations

from pathlib import Path

import pytest
import torch
from model_fixtures import train_model_dir


@pytest.fixture(scope="session")
def trained_model_dir(prepared_breastmnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return train_model_dir(prepared_breastmnist, tmp_path_factory.mktemp("model"))
