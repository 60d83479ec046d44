"""The environment the libraries read (Prefect, DVC, MLflow, git), written by the CLI and nowhere else.

A ``medpipe`` command is the entry point of its process: it sets quiet, local defaults here before Prefect,
DVC or MLflow are imported (variables already set are kept), and the flows, stages and servers it starts in
the process, or as children, inherit them. A flow run that a Prefect worker starts has no CLI above it: it
gets :data:`FLOW_RUN_ENV` from the deployments' ``job_variables`` (infra/prefect.yaml; tests/infra checks
the two agree) and talks to a real Prefect server, so the temporary-server settings do not apply to it.
"""

from __future__ import annotations

import os

from medpipe.settings import Settings, get_settings

# Every process medpipe runs in: no telemetry (offline machines log errors for it), no progress bars in logs,
# no GitPython warning on a machine without git, and MLflow's own HTTP retries bounded (default: minutes).
FLOW_RUN_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
FILE_LEASE_STORAGE = "prefect.server.concurrency.lease_storage.filesystem"
# The temporary Prefect server a CLI process starts when PREFECT_API_URL is unset.
TEMPORARY_SERVER_ENV = {
    # Concurrency leases on disk: they outlive a killed process and its temporary server (pipelines/leases.py).
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": FILE_LEASE_STORAGE,
    # A loaded 2-core machine can take longer than Prefect's default to boot the temporary server.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def prepare_environment(settings: Settings | None = None) -> Settings:
    """Create the state folder and set the defaults above, with ``PREFECT_HOME`` in the state folder (variables
    already set are kept); returns the settings."""
    settings = settings or get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    defaults = {"PREFECT_HOME": str(settings.prefect_home), **TEMPORARY_SERVER_ENV, **FLOW_RUN_ENV}
    for name, value in defaults.items():
        os.environ.setdefault(name, value)
    return settings
