"""The shipped compose, Kubernetes and Docker serving are safe by default: never open on 0.0.0.0."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from components.serving.auth import api_keys, check_bind
from medpipe.config import ServingConfig
from medpipe.errors import MedpipeError
from medpipe.settings import Settings
from tests.helpers.infra import INFRA, K8S, compose_config, load_yaml_docs

OPEN_FLAGS = ("allow_unauthenticated", "require_api_key=false")


def _refuses_to_start_open(command: list[str], keys: str | None) -> None:
    assert not any(flag in arg for arg in command for flag in OPEN_FLAGS), command
    assert "serving.host=0.0.0.0" in command
    cfg = ServingConfig()
    with pytest.raises(MedpipeError):  # as shipped: the placeholder key, or no key on 0.0.0.0
        check_bind("0.0.0.0", api_keys(cfg, Settings(api_keys=SecretStr(keys) if keys else None)), cfg)
    check_bind("0.0.0.0", api_keys(cfg, Settings(api_keys=SecretStr("a-real-key"))), cfg)  # real keys: auth on


def test_compose_serving_needs_real_keys(compose_model: dict[str, Any], tmp_path: Path) -> None:
    serving = compose_model["services"]["serving"]
    _refuses_to_start_open(serving["command"], serving["environment"]["MEDPIPE_API_KEYS"])
    env = tmp_path / "no-keys.env"
    env.write_text(
        "\n".join(line for line in (INFRA / ".env.example").read_text().splitlines() if "API_KEYS" not in line)
    )
    result = compose_config(env)
    assert result.returncode != 0 and "MEDPIPE_API_KEYS" in result.stderr


def test_kubernetes_serving_needs_real_keys() -> None:
    (secret,) = [o for o in load_yaml_docs(K8S / "secret.example.yaml") if o["kind"] == "Secret"]
    (deployment,) = [o for o in load_yaml_docs(K8S / "serving.yaml") if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    keys = (secret.get("stringData") or {}).get("MEDPIPE_API_KEYS")
    _refuses_to_start_open(container["command"], keys)


def test_docker_image_serves_with_the_same_rule() -> None:
    cmd = next(line for line in (INFRA / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))
    assert "serving.host=0.0.0.0" in cmd and not any(flag in cmd for flag in OPEN_FLAGS)


def test_compose_mlflow_runs_behind_basic_auth(compose_model: dict[str, Any], tmp_path: Path) -> None:
    services = compose_model["services"]
    mlflow = services["mlflow"]
    assert "--app-name=basic-auth" in mlflow["command"]
    assert mlflow["environment"]["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/medpipe/mlflow-basic-auth.ini"
    mounts = {v["target"]: v["source"] for v in mlflow["volumes"]}
    assert Path(mounts["/etc/medpipe/mlflow-basic-auth.ini"]) == INFRA / "mlflow" / "basic_auth.ini"
    for name in ("worker", "serving"):  # every MLflow client logs in
        env = services[name]["environment"]
        assert env["MLFLOW_TRACKING_PASSWORD"] == mlflow["environment"]["MLFLOW_AUTH_ADMIN_PASSWORD"], name
    env = tmp_path / "no-mlflow-password.env"
    lines = (INFRA / ".env.example").read_text().splitlines()
    env.write_text("\n".join(line for line in lines if not line.startswith("MLFLOW_ADMIN_PASSWORD")))
    result = compose_config(env)
    assert result.returncode != 0 and "MLFLOW_ADMIN_PASSWORD" in result.stderr
