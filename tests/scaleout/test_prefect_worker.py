"""A real Prefect server (on PostgreSQL) + the ``medpipe-process`` work pool + a process worker run
``training_flow`` from its ``training-cpu`` deployment of infra/prefect.yaml, logging to the PG-backed MLflow server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, WorkPoolCreate
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.workers.process import ProcessWorker

from tests.helpers.configs import SCALEOUT
from tests.helpers.engines import REPO_ROOT, child_env, fresh_database, start, stop, tail, wait_http
from tests.helpers.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
PREFECT = [sys.executable, "-m", "prefect"]


def _prefect(args: list[str], env: dict[str, str], timeout: float = 480) -> str:
    out = subprocess.run(
        [*PREFECT, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert out.returncode == 0, f"prefect {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def test_flow_file_loads_the_way_a_worker_loads_it() -> None:
    """A worker imports the entrypoint *file* with its folder first on sys.path (prefect's load_script_as_module):
    a module in pipelines/ named like a top-level package shadows it (pipelines/monitoring.py once did)."""
    code = (
        "from prefect.utilities.importtools import load_script_as_module as load; "
        "m = load('pipelines/training.py'); print(m.training_flow.name)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=child_env(), capture_output=True,
                         text=True, timeout=180, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("training")


def test_process_worker_runs_training_flow_from_its_deployment(
    mlflow_pg, postgres, prepared_breastmnist: Path, tmp_path: Path
) -> None:
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    with fresh_database("medpipe_prefect") as db:
        env = child_env(
            PREFECT_HOME=str(tmp_path / "prefect-home"),
            PREFECT_API_DATABASE_CONNECTION_URL=db.replace("+psycopg", "+asyncpg"),
            PREFECT_UI_ENABLED="false",
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
        )
        server_log = tmp_path / "prefect-server.log"
        server = start([*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], server_log, env)
        worker = None
        try:
            wait_http(f"{api}/health", 240, server, server_log)
            env |= {
                "PREFECT_API_URL": api,
                "MEDPIPE_HOME": str(tmp_path / "state"),
                "MLFLOW_TRACKING_URI": mlflow_pg.url,
            }
            with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
                # what infra/bootstrap-prefect.sh creates with `prefect work-pool create` / `prefect gcl create`,
                # through the same API in-process (a `prefect` CLI process costs ~7 s of CPU just to import)
                template = ProcessWorker.get_default_base_job_template()
                client.create_work_pool(WorkPoolCreate(name="medpipe-process", type="process",
                                                       base_job_template=template))  # fmt: skip
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="gpu", limit=1))
                _prefect(["--no-prompt", "deploy", "--prefect-file", "infra/prefect.yaml", "--name", "training-cpu"],
                         env)  # fmt: skip

                overrides = [*SCALEOUT, "train.epochs=1", "search.n_trials=1", "registry.bootstrap_samples=100",
                             "registry.faithfulness_images=0", "project.name=scaleout-prefect",
                             "registry.model_name=scaleout-prefect"]  # fmt: skip
                params = {"prepared_path": str(prepared_breastmnist), "profile": "smoke", "overrides": overrides,
                          "reason": "scale-out test"}  # fmt: skip
                deployment = client.read_deployment_by_name("training/training-cpu")
                flow_run_id = str(client.create_flow_run_from_deployment(deployment.id, parameters=params).id)

                worker_log = tmp_path / "prefect-worker.log"
                worker = start([*PREFECT, "worker", "start", "--pool", "medpipe-process", "--run-once"], worker_log,
                               env)  # fmt: skip
                assert worker.wait(timeout=480) == 0, tail(worker_log, 8000)
                run = client.read_flow_run(UUID(flow_run_id))
            assert run.state.type.value == "COMPLETED", run.state.model_dump_json()[:2000] + tail(worker_log, 8000)
            assert run.deployment_id and run.work_pool_name == "medpipe-process"
        finally:
            if worker is not None:
                stop(worker)
            stop(server)

    # the flow's stages really ran against the shared stores: a registered challenger from this flow run
    client = MlflowClient(mlflow_pg.url)
    versions = client.search_model_versions("name = 'scaleout-prefect'")
    assert len(versions) == 1
    run = client.get_run(versions[0].run_id)
    assert run.data.tags.get("medpipe.prefect_flow_run_id") == flow_run_id
    assert client.get_model_version_by_alias("scaleout-prefect", "challenger").version == versions[0].version
