"""data_flow: ingest -> validate -> prepare -> version (DVC) -> push to the DVC remote."""

from __future__ import annotations

from prefect import flow, task

from components.data import versioning
from components.data.dataset import PreparedData
from medpipe.config import PipelineConfig
from pipelines.runtime import load, publish, retry_transient, run_stage

ingest_task = task(
    versioning.ingest_and_version,
    name="ingest-prepare-version",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=retry_transient,
)


@flow(name="data", log_prints=True)
def data_flow(
    params_path: str = "params.yaml",
    profile: str | None = None,
    overrides: list[str] | None = None,
    config: PipelineConfig | None = None,
) -> PreparedData:
    """Bring the configured dataset into the versioned workspace and return its prepared form."""
    cfg, settings = load(params_path, profile, overrides, config)
    prepared = run_stage("data", ingest_task, cfg.data, settings, push=True)
    publish("data-summary", versioning.summary_markdown(prepared), "Data version and class counts")
    return prepared
