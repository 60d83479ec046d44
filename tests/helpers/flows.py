"""Reading back what the flows recorded in Prefect (artifacts, flow runs, task-run states) and in MLflow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

# The smoke profile, shrunk further: 2 trials of 2 epochs; the gate still runs every check.
PROFILE = "smoke"
OVERRIDES = [
    "train.epochs=2",
    "search.n_trials=2",
    "registry.bootstrap_samples=100",
    "registry.min_primary=0.5",
    "registry.min_sensitivity=0.5",
]
# Keys of services.yaml (DVC does not track them, so `dvc exp run -S` cannot set them): the runs whose params are not
# compared with a `dvc exp run` pass them as overrides; the session project writes them into its services.yaml.
# Registration still scores the Grad-CAM maps (ROAD), on 8 test images instead of 32.
SERVICE_OVERRIDES = ["registry.faithfulness_images=8"]
# Retraining started by a drift check: no search, one epoch (same flow, same gate).
RETRAIN_OVERRIDES = [*OVERRIDES, "search.enabled=false", "train.epochs=1"]


def write_service_overrides(project_root: Path, overrides: list[str]) -> None:
    """Set ``key=value`` overrides in a project's services.yaml (the same rules as ``-S``), the file the flows and
    the DVC stages of that project both read."""
    import yaml

    from medpipe.config import apply_overrides

    path = project_root / "services.yaml"
    services = yaml.safe_load(path.read_text())
    apply_overrides(services, overrides)
    path.write_text(yaml.safe_dump(services, sort_keys=False))


@dataclass(frozen=True)
class Project:
    root: Path
    home: Path
    params: str  # params.yaml path relative to the project (cwd), as the flows receive it


@dataclass(frozen=True)
class FullRun:
    flow_run_id: Any  # UUID of the `pipeline` flow run
    summary: Any  # pipelines.full.PipelineSummary


def prefect_client():
    """A sync client against the server the current Prefect settings point at (the test harness)."""
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def child_flow_runs(client, parent_id: UUID) -> dict[str, Any]:
    """The subflow runs of a flow run, by flow name (data, training, deployment, monitoring)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    runs = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id]))
    )
    return {client.read_flow(r.flow_id).name: r for r in runs}


def flow_runs_named(client, flow_name: str) -> list[Any]:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


def markdown_artifact(client, key: str, flow_run_id: UUID) -> str:
    """The markdown a flow run published under ``key`` (fails when it published none)."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    found = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
        )
    )
    assert found, f"flow run {flow_run_id} published no artifact {key!r}"
    (artifact,) = found
    assert artifact.type == "markdown"
    return artifact.data


def task_run_named(client, flow_run_id: UUID, name: str):
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    (match,) = [r for r in runs if r.name.startswith(name)]
    return match


def champion_version(model_name: str) -> str | None:
    from mlflow import MlflowClient

    from medpipe.settings import get_settings

    settings = get_settings()
    client = MlflowClient(settings.tracking_uri, registry_uri=settings.registry_uri)
    try:
        return str(client.get_model_version_by_alias(model_name, "champion").version)
    except Exception:  # noqa: BLE001 - no alias yet
        return None
