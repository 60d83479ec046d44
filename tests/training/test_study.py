"""The names that find persisted state: a study's name and a run's key come from the training view."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from components.data.dataset import PreparedData
from components.training.study import study_name_for
from components.training.train import run_key
from tests.helpers.configs import smoke_cfg

PREPARED = PreparedData(Path("data/prepared"), ("a", "b"), {}, image_size=28, channels=1, data_version="md5-abc")


def test_study_name_is_the_one_the_whole_config_gave() -> None:
    """Studies in an existing Optuna storage are resumed by name: the view must name them as the whole config did
    (``<project>-search-`` + hash of data/augment/model/train, the space and the data version)."""
    cfg = smoke_cfg("search.enabled=true")
    dumped = cfg.model_dump(mode="json")
    key = {s: dumped[s] for s in ("data", "augment", "model", "train")}
    key |= {"space": dumped["search"]["space"], "data_version": "md5-abc"}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    assert study_name_for(cfg.for_training(), PREPARED) == f"breastmnist-search-{digest}"
    assert study_name_for(cfg.with_overrides({"registry.min_primary": 0.5}).for_training(), PREPARED) == (
        f"breastmnist-search-{digest}"
    )


def test_run_key_follows_training_params_and_data_only() -> None:
    view = smoke_cfg().for_training()
    key = run_key(view, PREPARED, "final")
    assert key == run_key(smoke_cfg("serving.port=9001", "registry.min_primary=0.5").for_training(), PREPARED, "final")
    assert key != run_key(view.with_overrides({"train.lr": 0.01}), PREPARED, "final")
    other_data = PreparedData(Path("x"), ("a", "b"), {}, image_size=28, channels=1, data_version="md5-def")
    assert key != run_key(view, other_data, "final")
