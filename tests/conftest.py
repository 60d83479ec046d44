"""Shared fixtures: real data, an isolated state folder, and a prepared BreastMNIST."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDPIPE_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")
BREASTMNIST = SHARED_DATA / "breastmnist.npz"


@pytest.fixture(scope="session")
def breastmnist_npz() -> Path:
    if not BREASTMNIST.is_file():
        pytest.skip(f"real data {BREASTMNIST} not present (expected ../shared/data beside the checkout)")
    return BREASTMNIST


@pytest.fixture
def medpipe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated MEDPIPE_HOME (and no tracking URI leaking in from the environment)."""
    from medpipe.settings import get_settings

    home = tmp_path / "state"
    monkeypatch.setenv("MEDPIPE_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MEDPIPE_MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prepared_breastmnist(breastmnist_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """BreastMNIST in the canonical prepared layout (session-wide, read-only for tests)."""
    from components.data.dataset import Split, write_manifest, write_split

    out = tmp_path_factory.mktemp("prepared")
    names = ["malignant", "normal_or_benign"]
    counts = {}
    with np.load(breastmnist_npz) as npz:
        for split in ("train", "val", "test"):
            images = npz[f"{split}_images"][..., None]
            labels = npz[f"{split}_labels"].ravel().astype(np.int64)
            write_split(out, split, Split(images, labels))
            counts[split] = {n: int((labels == i).sum()) for i, n in enumerate(names)}
    write_manifest(out, {"class_names": names, "counts": counts, "image_size": 28, "channels": 1})
    return out
