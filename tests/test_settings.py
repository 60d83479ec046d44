"""Every store defaults under MEDPIPE_HOME; each can be moved on its own; MLFLOW_TRACKING_URI wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from medpipe.settings import get_settings


def test_stores_live_under_one_home(medpipe_home: Path) -> None:
    s = get_settings()
    assert s.home == medpipe_home.resolve()
    assert s.tracking_uri == f"sqlite:///{medpipe_home / 'mlflow.db'}"
    for path in (s.reports, s.inference_log, s.dvc_cache_dir, s.prefect_home, s.models_dir, s.alert_log):
        assert medpipe_home.resolve() in Path(path).resolve().parents
    assert s.study_storage.startswith("sqlite:///") and str(medpipe_home) in s.study_storage


def test_env_overrides_each_store(medpipe_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDPIPE_MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("MEDPIPE_OPTUNA_STORAGE", "postgresql+psycopg://db/optuna")
    monkeypatch.setenv("MEDPIPE_DVC_REMOTE", "s3://bucket/dvc")
    get_settings.cache_clear()
    s = get_settings()
    assert s.tracking_uri == "http://mlflow.internal:5000"
    assert s.study_storage == "postgresql+psycopg://db/optuna"
    assert s.dvc_remote_url == "s3://bucket/dvc"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://standard:5000")
    assert get_settings().tracking_uri == "http://mlflow.internal:5000"  # read once: the cached settings hold
    get_settings.cache_clear()
    assert get_settings().tracking_uri == "http://standard:5000"  # the standard variable wins when read


def test_mlflow_writing_its_env_does_not_move_the_settings(medpipe_home: Path, tmp_path: Path) -> None:
    """mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI; settings built before keep their own store."""
    from components.tracking import use_tracking_store
    from medpipe.settings import Settings

    mine = get_settings()
    other = Settings(home=tmp_path / "other", mlflow_tracking_uri=f"sqlite:///{tmp_path / 'other.db'}")
    use_tracking_store(other)  # the autouse fixture undoes MLflow's globals after the test
    assert mine.tracking_uri == f"sqlite:///{medpipe_home / 'mlflow.db'}"
    with pytest.raises(ValueError, match="frozen"):
        mine.home = tmp_path  # type: ignore[misc]


def test_secrets_are_not_shown(medpipe_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDPIPE_SLACK_WEBHOOK_URL", "https://hooks.example/T000/SECRET")
    get_settings.cache_clear()
    s = get_settings()
    assert "SECRET" not in repr(s) and "SECRET" not in str(s.model_dump())
    assert s.slack_webhook_url.get_secret_value().endswith("SECRET")


def test_the_cli_prepares_the_environment_and_keeps_what_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``medpipe.cli.environment`` (the one writer of the environment) sets its defaults, PREFECT_HOME in the
    state folder, and leaves a variable the user set alone."""
    import os

    from medpipe.cli.environment import FLOW_RUN_ENV, TEMPORARY_SERVER_ENV, prepare_environment
    from medpipe.settings import Settings

    for var in ("PREFECT_HOME", *TEMPORARY_SERVER_ENV, *FLOW_RUN_ENV):  # restored by monkeypatch afterwards
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DO_NOT_TRACK", "0")
    settings = prepare_environment(Settings(home=tmp_path / "state"))
    assert settings.home.is_dir() and os.environ["PREFECT_HOME"] == str(tmp_path / "state" / "prefect")
    assert os.environ["DO_NOT_TRACK"] == "0"
    expected = {**TEMPORARY_SERVER_ENV, **FLOW_RUN_ENV, "DO_NOT_TRACK": "0"}
    assert {var: os.environ[var] for var in expected} == expected
