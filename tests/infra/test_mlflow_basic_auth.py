"""A real `mlflow server --app-name basic-auth` with the shipped infra/mlflow/basic_auth.ini: anonymous calls
cannot register a model version; medpipe's client logs in with MLFLOW_TRACKING_USERNAME/PASSWORD."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.infra import INFRA
from tests.helpers.ports import free_port
from tests.helpers.wait import wait_until

PASSWORD = "test-admin-password-123"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_registry_refuses_anonymous_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_db) -> None:
    from components.registry.ui import SERVER_ENV

    ini = (INFRA / "mlflow" / "basic_auth.ini").read_text()
    config = tmp_path / "basic_auth.ini"
    config.write_text(ini.replace("sqlite:////mlflow-auth/basic_auth.db", f"sqlite:///{tmp_path / 'auth.db'}"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        MLFLOW_AUTH_CONFIG_PATH=str(config),
        MLFLOW_AUTH_ADMIN_USERNAME="admin",
        MLFLOW_AUTH_ADMIN_PASSWORD=PASSWORD,
        MLFLOW_FLASK_SERVER_SECRET_KEY="test-csrf-key",
        **SERVER_ENV,
    )
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    cmd = [mlflow_bin, "server", "--app-name", "basic-auth", "--host", "127.0.0.1", "--port", str(port),
           "--workers", "1", "--backend-store-uri", empty_mlflow_db(tmp_path)]  # fmt: skip
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/health", timeout=2).status_code == 200, "mlflow server to start", 420,
                   procs=[proc], ignore=(httpx.HTTPError,), every_s=1,
                   detail=lambda: (tmp_path / "server.log").read_text()[-3000:])  # fmt: skip
        create = f"{url}/api/2.0/mlflow/registered-models/create"
        assert httpx.post(create, json={"name": "evil"}).status_code == 401
        assert httpx.post(create, json={"name": "evil"}, auth=("admin", "wrong-password-1")).status_code == 401
        # medpipe's own client, as the compose services run it
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=url, registry_uri=url)
        client.create_registered_model("medpipe-classifier")
        assert [m.name for m in client.search_registered_models()] == ["medpipe-classifier"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
