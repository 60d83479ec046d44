"""monitoring_flow: load window -> drift check -> reports -> alerts -> maybe trigger training_flow."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from monitoring.alerts import send_alerts
from monitoring.check import current_window, load_champion, split_window
from monitoring.drift import compute_drift
from monitoring.outputs import write_outputs
from monitoring.retrain import record_retrain, should_retrain
from pipelines.runtime import deployment_exists, load, publish, retry_transient, run_stage
from pipelines.schedule import DRIFT_EVENT, TRAINING_DEPLOYMENT
from pipelines.summaries import drift_markdown

RETRAIN_STATE = "retrain-state.json"


@dataclass(frozen=True)
class MonitoringSummary:
    status: str  # ok | drift | not_enough_data
    drift_detected: bool
    window_size: int
    estimated_accuracy: float | None
    champion_version: str
    report_html: str | None
    report_json: str | None
    alert: str
    retrain: str  # "started: ..." | "skipped: ..."


@flow(name="monitoring", log_prints=True)
def monitoring_flow(
    params_path: str = "params.yaml",
    profile: str | None = None,
    overrides: list[str] | None = None,
    images_dir: str | None = None,
    prepared_path: str | None = None,
    last: int | None = None,
) -> MonitoringSummary:
    """Check the champion's recent traffic (inference log), a folder of images, or a prepared test split.

    Confirmed drift emits ``medpipe.drift.detected``; when the training deployment exists its
    trigger starts retraining, without one the training flow runs inline. Cooldown and a daily cap
    (params ``monitoring.retrain``) keep it from retraining in a loop.
    """
    cfg, settings = load(params_path, profile, overrides)
    champion = run_stage(
        "load-champion",
        task(load_champion, name="load-champion", retries=2, retry_condition_fn=retry_transient),
        cfg,
        settings,
    )
    if prepared_path:
        window = run_stage(
            "load-window", task(split_window, name="load-window", cache_policy=NO_CACHE), champion, Path(prepared_path)
        )
    else:
        images = Path(images_dir) if images_dir else None
        window = run_stage(
            "load-window",
            task(current_window, name="load-window", cache_policy=NO_CACHE),
            champion,
            cfg,
            settings,
            images,
            last=last,
        )
    summary = run_stage(
        "drift-check",
        task(compute_drift, name="drift-check"),
        champion.reference,
        window,
        cfg.monitoring,
        model_version=champion.version,
    )
    paths = run_stage(
        "reports",
        task(write_outputs, name="write-reports"),
        summary,
        settings,
        cfg.project.name,
        f"{cfg.project.name}-monitoring",
        champion.version,
    )
    publish("drift-summary", drift_markdown(summary, paths), "Drift verdict, signals and report paths")
    outcome = run_stage("alerts", task(send_alerts, name="send-alerts"), summary, cfg.alerts, settings)
    retrain = _maybe_retrain(summary, cfg, settings, champion.version, params_path, profile, overrides)
    return MonitoringSummary(
        status=summary.status,
        drift_detected=summary.drift_detected,
        window_size=summary.window_size,
        estimated_accuracy=summary.estimated_accuracy,
        champion_version=champion.version,
        report_html=paths.get("html"),
        report_json=paths.get("json"),
        alert=f"{outcome.action}: {outcome.reason}",
        retrain=retrain,
    )


def _maybe_retrain(summary, cfg, settings, version, params_path, profile, overrides) -> str:
    state = settings.home / RETRAIN_STATE
    go, reason = should_retrain(summary, cfg.monitoring.retrain, state)
    if not go:
        return f"skipped: {reason}"
    record_retrain(state)
    emit_event(
        event=DRIFT_EVENT,
        resource={"prefect.resource.id": f"medpipe.model.{cfg.registry.model_name}"},
        payload={
            "reason": reason,
            "champion_version": version,
            "signals": {s.name: {"score": s.score, "threshold": s.threshold} for s in summary.drifted_signals},
        },
    )
    if deployment_exists(TRAINING_DEPLOYMENT):  # served/deployed: its drift trigger starts the run from the event
        return f"started via event {DRIFT_EVENT}: {reason}"
    from pipelines.training import training_flow

    result = training_flow(params_path, profile, overrides, reason=f"drift: {reason}")
    return f"started inline: {reason} -> v{result.version} ({'promoted' if result.promoted else 'not promoted'})"
