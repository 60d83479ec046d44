"""monitoring_flow: champion -> run_drift_check (verdict, retrain decision, report, alert, history)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from components.tracking import experiment_name
from medpipe.config import PipelineConfig
from monitoring.check import Champion, current_window, load_champion, run_drift_check, split_window
from monitoring.summary import DriftSummary
from pipelines.events import DRIFT_EVENT, TRAINING_DEPLOYMENT
from pipelines.results import MonitoringSummary
from pipelines.runtime import deployment_exists, load, publish, retry_transient, run_stage
from pipelines.summaries import drift_markdown

load_champion_task = task(load_champion, name="load-champion", retries=2, retry_condition_fn=retry_transient)
drift_check_task = task(run_drift_check, name="drift-check", cache_policy=NO_CACHE)  # writes reports: no retries


@flow(name="monitoring", log_prints=True)
def monitoring_flow(
    params_path: str = "params.yaml",
    profile: str | None = None,
    overrides: list[str] | None = None,
    images_dir: str | None = None,
    prepared_path: str | None = None,
    last: int | None = None,
    config: PipelineConfig | None = None,
) -> MonitoringSummary:
    """Check the champion's recent traffic (inference log), a folder of images, or a prepared test split,
    through :func:`monitoring.check.run_drift_check` (the function ``medpipe monitor`` calls too).

    Confirmed drift emits ``medpipe.drift.detected`` before anyone is alerted; when the training
    deployment exists its trigger starts retraining, without one the training flow runs inline. Cooldown
    and a daily cap (params ``monitoring.retrain``) keep it from retraining in a loop; the alert states
    the decision.
    """
    cfg, settings = load(params_path, profile, overrides, config)
    champion = run_stage("load-champion", load_champion_task, settings, registry=cfg.registry, export=cfg.export)
    if prepared_path:
        window_of = partial(split_window, prepared_dir=Path(prepared_path))
    else:
        folder = Path(images_dir) if images_dir else None
        window_of = partial(
            current_window, cfg=cfg.monitoring, settings=settings, images_dir=folder, last=last, serving=cfg.serving
        )

    def start_retrain(reason: str) -> str:
        return _start_retrain(reason, champion, cfg, params_path, profile, overrides)

    result = run_stage(
        "drift-check",
        drift_check_task,
        cfg.monitoring,
        settings,
        window_of,
        experiment_name(cfg.project.name, "monitoring"),
        champion,
        alerts=cfg.alerts,
        project_name=cfg.project.name,
        start_retrain=start_retrain,
    )
    summary, paths = result.summary, result.paths
    publish("drift-summary", drift_markdown(summary, paths), "Drift verdict, signals and report paths")
    outcome = result.alert
    return MonitoringSummary(
        status=summary.status,
        drift_detected=summary.drift_detected,
        window_size=summary.window_size,
        estimated_accuracy=summary.estimated_accuracy,
        champion_version=champion.version,
        report_html=paths.get("html"),
        report_json=paths.get("json"),
        alert=f"{outcome.action}: {outcome.reason}" if outcome else "alerts off",
        retrain=result.retrain.text(),
    )


def _start_retrain(
    reason: str,
    champion: Champion,
    cfg: PipelineConfig,
    params_path: str,
    profile,
    overrides,  # noqa: ANN001
) -> str:
    """Emit the drift event; the training deployment's trigger starts the run from it (reading the config in
    its own process), or (no deployment) run the training flow inline on this run's config, not read again.
    Returns what was started."""
    emit_event(
        event=DRIFT_EVENT,
        resource={"prefect.resource.id": f"medpipe.model.{cfg.registry.model_name}"},
        payload={"reason": reason, "champion_version": champion.version},
    )
    if deployment_exists(TRAINING_DEPLOYMENT):
        return f"event {DRIFT_EVENT} -> deployment {TRAINING_DEPLOYMENT}"
    from pipelines.training import training_flow

    result = training_flow(params_path, profile, overrides, reason=f"drift: {reason}", config=cfg)
    state = "promoted" if result.promoted else "not promoted"
    return f"training run {result.run_id} inline -> v{result.version} ({state})"


__all__ = ["DriftSummary", "MonitoringSummary", "monitoring_flow"]
