"""Pre-flight: config vs data vs registry, checked before any training, with one message saying what to set."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.data.dataset import PreparedData
from components.registry.preflight import (
    CLASS_NAMES_TAG,
    PreflightError,
    preflight,
    resolve_positive_class,
)
from medpipe import metrics as mx
from medpipe.config import PipelineConfig, dataset_name, load_config
from medpipe.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def prepared(names: list[str], train: list[int], size: int = 28, channels: int = 1) -> PreparedData:
    counts = {"train": dict(zip(names, train, strict=True)), "val": {"x": 60}, "test": {}}
    return PreparedData(Path("/data/prepared"), tuple(names), counts, size, channels)


def check(cfg: PipelineConfig, data: PreparedData, settings: Settings):
    """The pre-flight on the sections of ``cfg`` it reads, as the training flow calls it."""
    return preflight(data, settings, data=cfg.data, registry=cfg.registry, monitoring=cfg.monitoring)


def test_binary_data_without_positive_class_takes_the_rarer_training_class() -> None:
    name, note = resolve_positive_class(None, ["clear", "lesion"], {"clear": 400, "lesion": 146})
    assert name == "lesion" and "'lesion', the rarer class of the training split (146 of 546 images)" in note
    assert mx.rarer_class(["a", "b"], {"a": 5, "b": 5}) == "b"  # a tie keeps the usual last-class slot
    assert resolve_positive_class("clear", ["clear", "lesion"], {}) == ("clear", None)


def test_multiclass_without_positive_class_has_none_and_says_so() -> None:
    name, note = resolve_positive_class(None, list("abcde"), dict.fromkeys("abcde", 10))
    assert name is None and "macro one-vs-rest AUC" in note


def test_every_problem_in_one_message_before_training(tmp_path: Path, empty_mlflow_db) -> None:
    empty_mlflow_db(tmp_path / "state")  # the default store, already migrated (a new one costs 5-15 s here)
    cfg = load_config(REPO / "params.yaml", overrides=["registry.positive_class=malignant", "data.channels=3"])
    with pytest.raises(PreflightError) as err:
        check(cfg, prepared(["clear", "lesion"], [10, 5]), Settings(home=tmp_path / "state"))
    msg = str(err.value)
    assert "2 problem(s)" in msg and "'malignant' is not a class" in msg and "['clear', 'lesion']" in msg
    assert "data.channels=3" in msg and "registry.positive_class" in msg
    small = prepared(["clear", "lesion"], [10, 5])
    small.counts["val"] = {"clear": 20, "lesion": 10}
    with pytest.raises(PreflightError, match=r"hold 30 images, fewer than monitoring.min_window=50"):
        check(load_config(REPO / "params.yaml"), small, Settings(home=tmp_path / "state"))


def test_a_registered_model_with_another_class_list_is_refused_naming_both(tmp_path: Path, empty_mlflow_db) -> None:
    from components.tracking import mlflow_client

    empty_mlflow_db(tmp_path / "state")  # the default store, already migrated (a new one costs 5-15 s here)
    settings = Settings(home=tmp_path / "state")
    cfg = load_config(REPO / "params.yaml", overrides=["data.source=/x/derm"])
    client = mlflow_client(settings)
    client.create_registered_model(cfg.registry.model_name, tags={CLASS_NAMES_TAG: '["benign", "malignant"]'})
    with pytest.raises(PreflightError) as err:
        check(cfg, prepared(["a", "b", "c"], [3, 3, 3]), settings)
    msg = str(err.value)
    assert "'derm-classifier' has classes ['benign', 'malignant']" in msg and "['a', 'b', 'c']" in msg
    assert "registry.model_name" in msg
    same = check(cfg, prepared(["benign", "malignant"], [9, 3]), settings)
    assert same.registry.positive_class == "malignant" and len(same.notes) == 1
    assert same.registry.model_dump(exclude={"positive_class"}) == cfg.registry.model_dump(exclude={"positive_class"})


def test_names_derive_from_the_dataset_unless_params_set_them() -> None:
    assert dataset_name("breastmnist") == "breastmnist" and dataset_name("/data/Chest X-Ray/") == "chest-x-ray"
    assert dataset_name("scans/derm/labels.csv") == "derm" and dataset_name("a/skin_2024.npz") == "skin-2024"
    cfg = PipelineConfig.model_validate({"data": {"source": "/d/knee.csv"}})
    assert (cfg.project.name, cfg.registry.model_name) == ("knee", "knee-classifier")
    cfg = PipelineConfig.model_validate({"data": {"source": "/d/knee.csv"}, "registry": {"model_name": "mine"}})
    assert (cfg.project.name, cfg.registry.model_name) == ("knee", "mine")


def test_only_transient_errors_are_retried() -> None:
    from medpipe.config import ConfigError
    from medpipe.errors import DataError, GateError, RegistryError
    from pipelines.runtime import is_transient

    for err in (DataError("x"), GateError("x"), ConfigError("x"), PreflightError("x")):
        assert not is_transient(err), err
    for err in (RegistryError("unreachable"), ConnectionError("reset"), OSError("database is locked")):
        assert is_transient(err), err
