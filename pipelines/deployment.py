"""deployment_flow: ONNX export -> parity gate -> set champion -> signal running servers to reload."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.runtime import flow_run

from components.registry.aliases import champion_version, promote
from components.registry.redeploy import deploy_registered
from components.serving.reload import signal_reload
from medpipe.config import PipelineConfig
from medpipe.errors import GateError
from pipelines.results import DeploymentSummary
from pipelines.runtime import load, publish, retry_transient, run_stage
from pipelines.summaries import kv_markdown

export_task = task(
    deploy_registered, name="export-and-parity", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_transient
)
set_champion_task = task(promote, name="set-champion", retries=2, retry_condition_fn=retry_transient)
reload_task = task(
    signal_reload, name="signal-server", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_transient
)


@flow(name="deployment", log_prints=True)
def deployment_flow(
    prepared_path: str,
    version: str | None = None,
    params_path: str = "params.yaml",
    profile: str | None = None,
    overrides: list[str] | None = None,
    config: PipelineConfig | None = None,
) -> DeploymentSummary:
    """Verify a registered version's ONNX export on the current test set, make it champion, reload servers.

    ``version`` defaults to the current champion (re-verification); a failed parity gate leaves the
    champion alias where it was.
    """
    cfg, settings = load(params_path, profile, overrides, config)
    name = cfg.registry.model_name
    version = version or champion_version(settings, cfg.registry)
    if version is None:
        raise GateError(f"no version to deploy: registered model {name!r} has no champion; pass version=")
    result = run_stage(
        "export",
        export_task,
        f"models:/{name}/{version}",
        Path(prepared_path),
        cfg.export,
        settings,
    )
    if not result.passed:
        raise GateError(f"stage 'parity-gate' failed for {name} v{version}: {result.report.reason}; champion unchanged")
    if champion_version(settings, cfg.registry) != version:
        run_stage(
            "set-champion",
            set_champion_task,
            version,
            "deployment_flow: parity gate passed",
            settings,
            cfg.registry,
            actor=f"prefect:{flow_run.get_id() or 'local'}",
        )
    reloaded = run_stage("reload", reload_task, cfg.serving, settings)
    summary = DeploymentSummary(name, version, str(result.onnx_path), result.report.as_tags(), reloaded)
    publish(
        "deployment-summary",
        kv_markdown(f"Deployment: {name} v{version}", {"onnx": summary.onnx_path, **summary.parity}),
        "Parity gate and champion",
    )
    return summary
