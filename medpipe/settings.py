"""Locations and secrets, read from the environment once, behind one cached getter.

Everything defaults under one project-local state folder (``.medpipe/``); ``MEDPIPE_HOME``
relocates it as a whole, and each store has its own variable for scale-out. The standard
``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI`` and ``PREFECT_HOME`` win over medpipe's own variables.

A :class:`Settings` is frozen and reads the environment only when it is built: later changes to
``os.environ`` (MLflow's ``set_tracking_uri`` writes ``MLFLOW_TRACKING_URI``) never change it under the
program. Nothing here writes the environment: the CLI does, once (:mod:`medpipe.cli.environment`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDPIPE_", extra="ignore", frozen=True, populate_by_name=True)

    home: Path = Field(Path(".medpipe"), description="State folder holding every local store.")
    data_dir: Path | None = Field(None, description="Where named MedMNIST files are looked up first.")
    project_dir: Path = Field(Path("."), description="The DVC/git project root (holds params.yaml, dvc.yaml).")
    offline: bool = Field(False, description="Never download (MEDPIPE_OFFLINE=1): named datasets must be local.")

    mlflow_tracking_uri: str | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MEDPIPE_MLFLOW_TRACKING_URI")
    )
    mlflow_registry_uri: str | None = Field(
        None, validation_alias=AliasChoices("MLFLOW_REGISTRY_URI", "MEDPIPE_MLFLOW_REGISTRY_URI")
    )
    prefect_home_dir: Path | None = Field(None, validation_alias=AliasChoices("PREFECT_HOME", "MEDPIPE_PREFECT_HOME"))
    mlflow_artifacts: str | None = None
    optuna_storage: str | None = None
    dvc_remote: str | None = None
    reports_dir: Path | None = None
    inference_db: Path | None = None
    gpu_lease_seconds: float = Field(
        120.0, ge=60, le=86400, description="Lease on the `gpu` slot: a killed holder's slot frees itself after this."
    )

    # Secrets: only ever from the environment (or Prefect secret blocks), never params.yaml.
    slack_webhook_url: SecretStr | None = None
    webhook_url: SecretStr | None = None
    smtp_user: SecretStr | None = None
    smtp_password: SecretStr | None = None
    api_keys: SecretStr | None = Field(None, description="Comma-separated API keys for the serving endpoint.")

    @field_validator("home", "project_dir")
    @classmethod
    def _absolute(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    # --- stores -------------------------------------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def registry_uri(self) -> str:
        return self.mlflow_registry_uri or self.tracking_uri

    @property
    def artifact_location(self) -> str | None:
        """New experiments' artifact root. With a tracking server and no ``MEDPIPE_MLFLOW_ARTIFACTS``: None, so the
        server's own root applies (``--serve-artifacts``/``--default-artifact-root``), never a client-local folder."""
        if self.mlflow_artifacts:
            return self.mlflow_artifacts
        remote = self.tracking_uri.startswith(("http://", "https://"))
        return None if remote else (self.home / "mlartifacts").as_uri()

    @property
    def study_storage(self) -> str:
        return self.optuna_storage or f"sqlite:///{self.home / 'optuna.db'}"

    @property
    def dvc_remote_url(self) -> str:
        return self.dvc_remote or str(self.home / "dvc-remote")

    @property
    def dvc_cache_dir(self) -> Path:
        return self.home / "dvc-cache"

    @property
    def prefect_home(self) -> Path:
        return self.prefect_home_dir or self.home / "prefect"

    @property
    def reports(self) -> Path:
        return (self.reports_dir or self.home / "reports").resolve()

    @property
    def inference_log(self) -> Path:
        return (self.inference_db or self.home / "inference.db").resolve()

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def download_cache(self) -> Path:
        return self.home / "downloads"

    @property
    def alert_log(self) -> Path:
        return self.home / "alerts.jsonl"

    @property
    def audit_log(self) -> Path:
        return self.home / "registry-audit.jsonl"

    @property
    def evidently_workspace(self) -> Path:
        return self.home / "evidently"

    def api_key_set(self) -> set[str]:
        raw = self.api_keys.get_secret_value() if self.api_keys else ""
        return {k.strip() for k in raw.split(",") if k.strip()}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once (``get_settings.cache_clear()`` re-reads it)."""
    return Settings()
