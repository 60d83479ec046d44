"""params.yaml validation, profiles and -S overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from medpipe.config import TRAINING_SECTIONS, ConfigError, PipelineConfig, load_config, parse_override

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def test_repo_params_validate_and_profiles_apply() -> None:
    full = load_config(PARAMS, profile="full")
    smoke = load_config(PARAMS, profile="smoke")
    assert full.search.enabled and full.search.space
    assert smoke.model.name == "cnn" and smoke.search.n_trials <= 3
    assert set(smoke.search.space) == {"train.lr", "model.dropout"}
    assert full.params_hash() != smoke.params_hash()


def test_lineage_is_a_frozen_view_that_names_runs_and_tracks_every_tunable() -> None:
    from pydantic import ValidationError

    from components.tracking import experiment_name, run_name

    smoke = load_config(PARAMS, profile="smoke", overrides=["data.source=/data/Chest X-Ray/"])
    lineage = smoke.lineage()
    assert (lineage.project, lineage.dataset, lineage.model, lineage.profile) == (
        "chest-x-ray", "/data/Chest X-Ray/", "cnn", "smoke",
    )  # fmt: skip
    assert lineage.params_hash == smoke.params_hash()
    assert set(lineage.params) == {"model", "train", "augment"} and lineage.params["train"]["lr"] == smoke.train.lr
    assert run_name(lineage, "seeds3") == "chest-x-ray-cnn-smoke-seeds3"
    assert experiment_name(lineage.project, "monitoring") == "chest-x-ray-monitoring"
    assert run_name(PipelineConfig().lineage()) == "breastmnist-cnn-custom"
    with pytest.raises(ValidationError, match="frozen"):
        lineage.params_hash = "x"
    # a change in a section the view does not hold (the gate's floor) still changes the lineage hash
    assert smoke.with_overrides({"registry.min_primary": 0.5}).lineage().params_hash != lineage.params_hash


def test_default_profile_comes_from_params_and_dash_s_profile_picks_another(tmp_path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("profile: small\ntrain: {epochs: 40}\nprofiles:\n  small: {train.epochs: 2}\n  big: {}\n")
    assert load_config(params).train.epochs == 2  # what `dvc repro` runs: params.yaml's own profile
    assert load_config(params, profile="big").train.epochs == 40
    assert load_config(params, overrides=["profile=big"]).train.epochs == 40  # as `dvc exp run -S profile=big`
    assert load_config(params, overrides=["profile=big", "train.epochs=3"]).train.epochs == 3
    with pytest.raises(ConfigError, match="profile 'huge' is not defined"):
        load_config(params, overrides=["profile=huge"])


def test_override_wins_over_profile_and_parses_yaml_values() -> None:
    cfg = load_config(PARAMS, profile="smoke", overrides=["train.epochs=2", "data.source=/tmp/x.npz", "train.tta=true"])
    assert cfg.train.epochs == 2 and cfg.data.source == "/tmp/x.npz" and cfg.train.tta is True


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("model.name=vgg16", ["model.name", "'vgg16'", "resnet18"]),
        ("train.lr=-0.1", ["train.lr", "-0.1", "greater than 0"]),
        ("train.epochz=3", ["train.epochz", "unknown key"]),
        ("search.space={}", ["search", "space is empty"]),
        ("data.on_invalid=ignore", ["data.on_invalid", "'ignore'", "skip-and-report"]),
        ("train.kfold=1", ["train.kfold", "kfold=1"]),
    ],
)
def test_bad_values_name_key_value_and_allowed(override: str, names: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(PARAMS, overrides=[override])
    for text in names:
        assert text in str(err.value)


def test_bad_search_param_bounds() -> None:
    with pytest.raises(ConfigError, match="low=0.1 is greater than high=0.01"):
        load_config(PARAMS, overrides={"search.space": {"train.lr": {"type": "float", "low": 0.1, "high": 0.01}}})
    with pytest.raises(ConfigError, match="must be '<section>.<field>'"):
        load_config(PARAMS, overrides={"search.space": {"lr": {"type": "float", "low": 0.1, "high": 1}}})


def test_malformed_override_and_missing_profile_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="key.path=value"):
        parse_override("train.epochs")
    with pytest.raises(ConfigError, match="profile 'nope' is not defined"):
        load_config(PARAMS, profile="nope")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_override_into_scalar_is_rejected() -> None:
    with pytest.raises(ConfigError, match="'epochs' is not a config section"):
        load_config(PARAMS, overrides=["train.epochs.max=3"])


def test_defaults_alone_are_valid() -> None:
    assert PipelineConfig().search.enabled is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lr=1e400", "train.lr = '1e400': Input should be a finite number"),  # YAML reads it as a string: inf
        ("train.lr=.nan", "train.lr = nan: Input should be a finite number"),
        ("registry.tolerance=.inf", "registry.tolerance = inf"),
        ("train.epochs=true", "epochs = true is a boolean; give a whole number"),
        ("train.lr=false", "lr = false is a boolean; give a number"),
        ("schedule.monitoring_cron=61 * * * *", "schedule.monitoring_cron = '61 * * * *': not a cron expression"),
        ("schedule.training_cron=H 3 * * 0", "not a cron expression"),  # croniter's hashed form: Prefect refuses it
        ("schedule.timezone=Mars/Olympus", "not an IANA time zone"),
    ],
)
def test_non_finite_bools_for_numbers_and_crons_are_refused_at_load(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(PARAMS, overrides=[override])
    assert message in str(err.value)


def test_bools_stay_valid_where_a_bool_is_meant() -> None:
    cfg = load_config(PARAMS, overrides=["train.tta=false", "serving.require_api_key=true", "search.enabled=false"])
    assert cfg.train.tta is False and cfg.serving.require_api_key is True


def test_empty_params_file_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "params.yaml"
    empty.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(empty)


def test_base_file_is_validated_before_a_profile_can_hide_a_bad_value(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text("train: {epochs: -3}\nprofiles:\n  fix: {train.epochs: 2}\n")
    with pytest.raises(ConfigError) as err:
        load_config(params, profile="fix")
    assert "train.epochs = -3" in str(err.value) and "(profile" not in str(err.value).splitlines()[0]


def test_training_view_holds_the_training_sections_and_hashes_only_them() -> None:
    cfg = load_config(PARAMS, profile="smoke")
    view = cfg.for_training()
    assert set(view.model_dump()) == {"profile", *TRAINING_SECTIONS}
    assert view.train == cfg.train and view.search == cfg.search and view.profile == "smoke"
    # a registry or serving change leaves the training view (run keys, study names) as it was; a train change not
    other = cfg.with_overrides({"registry.min_primary": 0.5, "serving.port": 9000})
    assert other.params_hash() != cfg.params_hash() and other.for_training().params_hash() == view.params_hash()
    tuned = view.with_overrides({"train.lr": 0.01, "model.dropout": 0.2})  # the search's dotted keys
    assert (tuned.train.lr, tuned.model.dropout) == (0.01, 0.2) and tuned.params_hash() != view.params_hash()
    assert cfg.with_overrides({"train.lr": 0.01, "model.dropout": 0.2}).for_training() == tuned
    # training's runs are named like the rest; their lineage hash is the training sections'
    assert view.lineage().model_copy(update={"params_hash": cfg.params_hash()}) == cfg.lineage()
    assert view.lineage().params_hash == view.params_hash()
    with pytest.raises(ConfigError, match="override registry.min_primary: training reads only project, data"):
        view.with_overrides({"registry.min_primary": 0.5})
    with pytest.raises(ConfigError, match="train.lr"):
        view.with_overrides(["train.lr=-1"])
    with pytest.raises(ValidationError, match="frozen"):
        view.train.lr = 0.5  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        cfg.train = view.train  # type: ignore[misc]
