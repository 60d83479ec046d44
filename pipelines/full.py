"""pipeline: data -> training -> deployment -> a first monitoring run (what `medpipe run` and `make demo` do)."""

from __future__ import annotations

from prefect import flow

from medpipe.config import PipelineConfig
from pipelines.data import data_flow
from pipelines.deployment import deployment_flow
from pipelines.monitoring_flow import monitoring_flow
from pipelines.results import PipelineSummary
from pipelines.runtime import load
from pipelines.training import training_flow


@flow(name="pipeline", log_prints=True)
def pipeline(
    params_path: str = "params.yaml",
    profile: str | None = None,
    overrides: list[str] | None = None,
    config: PipelineConfig | None = None,
) -> PipelineSummary:
    """The whole pipeline on the configured dataset; each stage is its own flow run (subflow).

    The config is read once (here, or by the caller that passes ``config``) and handed to every subflow."""
    cfg, _ = load(params_path, profile, overrides, config, reason="pipeline")  # names and tags the run
    prepared = data_flow(params_path, profile, overrides, config=cfg)
    trained = training_flow(
        params_path,
        profile,
        overrides,
        reason="pipeline",
        prepared_path=str(prepared.path),
        data_version=prepared.data_version,
        config=cfg,
    )
    if trained.champion is None:  # nothing passed the gate yet: nothing to deploy or watch
        return PipelineSummary(trained, None, None)
    deployed = deployment_flow(str(prepared.path), trained.champion, params_path, profile, overrides, config=cfg)
    # First check: the held-out test split through the served graph (no traffic has been logged yet).
    watched = monitoring_flow(params_path, profile, overrides, prepared_path=str(prepared.path), config=cfg)
    return PipelineSummary(trained, deployed, watched)
