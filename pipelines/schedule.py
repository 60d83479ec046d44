"""Schedules and event triggers for `medpipe schedule`: crons from params.yaml, served from one process.

Teams with a work pool deploy ``infra/prefect.yaml`` instead; both declare the same deployments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron

from medpipe.config import PipelineConfig
from pipelines.events import DRIFT_EVENT


@dataclass(frozen=True)
class PlannedDeployment:
    name: str
    flow: str
    cron: str | None
    timezone: str
    triggered_by: str | None


def planned(cfg: PipelineConfig) -> list[PlannedDeployment]:
    s = cfg.schedule
    return [
        PlannedDeployment("monitoring-nightly", "monitoring", s.monitoring_cron, s.timezone, None),
        PlannedDeployment("training-weekly", "training", s.training_cron, s.timezone, DRIFT_EVENT),
    ]


def next_runs(cfg: PipelineConfig, n: int = 3, start: datetime | None = None) -> dict[str, list[datetime]]:
    """The next ``n`` scheduled times of each deployment (what `medpipe schedule --list` prints)."""
    from prefect.server.schemas.schedules import CronSchedule

    out = {}
    for d in planned(cfg):
        if d.cron:
            sched = CronSchedule(cron=d.cron, timezone=d.timezone)
            out[d.name] = [dt for dt in _dates(sched, n, start)]
    return out


def _dates(sched, n: int, start: datetime | None) -> list[datetime]:
    import asyncio

    dates = sched.get_dates(n=n, start=start)
    return asyncio.run(dates) if asyncio.iscoroutine(dates) else list(dates)


@dataclass(frozen=True)
class ServedDeployment:
    """A deployment as the Prefect server holds it (what `medpipe schedule --list` shows with a server)."""

    name: str  # <flow>/<deployment>
    paused: bool
    schedules: tuple[str, ...]  # "0 2 * * * UTC", "... (inactive)"
    automations: tuple[str, ...]  # "retrain-on-drift: enabled"
    next_runs: tuple[str, ...] = ()  # ISO times of the runs the server has scheduled


def server_deployments(n: int = 3) -> list[ServedDeployment]:
    """Every deployment the configured Prefect server has, with its schedules, the automations that start
    it (event triggers) and whether each is enabled, and the next ``n`` runs it has scheduled."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    out = []
    with get_client(sync_client=True) as client:
        for d in client.read_deployments():
            flow = client.read_flow(d.flow_id).name
            schedules = tuple(
                f"{getattr(s.schedule, 'cron', None) or s.schedule} {getattr(s.schedule, 'timezone', '') or ''}".strip()
                + ("" if s.active else " (inactive)")
                for s in d.schedules
            )
            autos = client.read_resource_related_automations(f"prefect.deployment.{d.id}")
            automations = tuple(f"{a.name}: {'enabled' if a.enabled else 'disabled'}" for a in autos)
            upcoming = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(any_=[d.id]),
                    state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Scheduled"])),
                ),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=n,
            )
            times = tuple(
                r.expected_start_time.isoformat(timespec="minutes") for r in upcoming if r.expected_start_time
            )
            out.append(ServedDeployment(f"{flow}/{d.name}", bool(d.paused), schedules, automations, times))
    return sorted(out, key=lambda d: d.name)


def drift_trigger(model_name: str) -> DeploymentEventTrigger:
    """Start retraining when the monitoring flow emits `medpipe.drift.detected` for this model."""
    return DeploymentEventTrigger(
        name="retrain-on-drift",
        expect={DRIFT_EVENT},
        match={"prefect.resource.id": f"medpipe.model.{model_name}"},
        parameters={"reason": "drift: {{ event.payload.reason }}"},
    )


def build_deployments(
    cfg: PipelineConfig, params_path: str, profile: str | None = None, overrides: list[str] | None = None
) -> list:
    from pipelines.monitoring_flow import monitoring_flow
    from pipelines.training import training_flow

    common = {"params_path": params_path, "profile": profile, **({"overrides": overrides} if overrides else {})}
    s = cfg.schedule
    return [
        monitoring_flow.to_deployment(
            name="monitoring-nightly", schedules=[Cron(s.monitoring_cron, timezone=s.timezone)], parameters=common
        ),
        training_flow.to_deployment(
            name="training-weekly",
            schedules=[Cron(s.training_cron, timezone=s.timezone)],
            triggers=[drift_trigger(cfg.registry.model_name)],
            parameters={**common, "reason": "schedule"},
        ),
    ]


def serve_all(
    cfg: PipelineConfig, params_path: str, profile: str | None = None, overrides: list[str] | None = None
) -> None:
    """Run every deployment from this process until interrupted (needs a Prefect server: PREFECT_API_URL)."""
    from prefect import serve

    serve(*build_deployments(cfg, params_path, profile, overrides), pause_on_shutdown=False)
