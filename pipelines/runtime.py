"""Wiring shared by the flows: config loading, stage naming on failure, retry policy, the `gpu` limit, artifacts.

Nothing here computes anything a stage does; it only makes flows observable and safe.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from components.tracking import flow_run_scope
from medpipe.config import PipelineConfig, load_config
from medpipe.errors import MedpipeError, is_transient
from medpipe.progress import progress
from medpipe.settings import Settings, get_settings
from pipelines.leases import GPU_LIMIT, hold_slot

T = TypeVar("T")
SHOWN_STAGE_S = 1.0  # stages quicker than this are not shown on the terminal (the log file has them)


class StageFailed(MedpipeError):
    """Raised by a flow when one of its stages fails; the message names the stage and the cause."""


def load(
    params_path: str,
    profile: str | None,
    overrides: list[str] | None,
    config: PipelineConfig | None = None,
    *,
    reason: str | None = None,
) -> tuple[PipelineConfig, Settings]:
    """The config of this flow run and the settings (state folder, stores); names and tags the run.

    A flow started by a caller that already holds the config (the CLI, the parent ``pipeline`` flow) gets
    it as ``config`` and reads nothing; a deployment run (schedule, event, worker) is an entry point and
    reads ``params_path`` + ``profile`` + ``overrides`` here, once. The environment is the caller's: the CLI
    sets it (:mod:`medpipe.cli.environment`), a worker from the deployment's ``job_variables``."""
    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    cfg = config if config is not None else load_config(params_path, overrides=overrides or [], profile=profile)
    label_run(cfg, reason)
    return cfg, settings


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry a failed task only when its error can pass on its own
    (:func:`medpipe.errors.is_transient`); a config, data or gate error fails once."""
    try:
        state.result()
    except Exception as err:  # noqa: BLE001 - the task's own error, classified
        return is_transient(err)
    return False


def run_labels(cfg: PipelineConfig, flow_name: str, reason: str | None, now: datetime) -> tuple[str, list[str]]:
    """``(<dataset>-<flow>-<profile>-<MMDD-HHMMSS>, [dataset:…, profile:…, reason:…])`` for a flow run."""
    profile = cfg.profile or "custom"
    tags = ["medpipe", f"dataset:{cfg.project.name}", f"profile:{profile}"]
    if reason:  # "drift: psi 0.4 (...)" -> reason:drift
        kind = re.sub(r"[^a-z0-9_-]+", "-", reason.split(":", 1)[0].strip().lower()).strip("-")[:40]
        tags.append(f"reason:{kind or 'manual'}")
    return f"{cfg.project.name}-{flow_name}-{profile}-{now:%m%d-%H%M%S}", tags


def label_run(cfg: PipelineConfig, reason: str | None = None) -> None:
    """Give the current flow run a readable name and the dataset/profile/reason tags (not Prefect's
    random "quick-rabbit"), so runs can be found and filtered in the Prefect UI."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    name, tags = run_labels(cfg, ctx.flow.name, reason, datetime.now(UTC))
    with get_client(sync_client=True) as client:
        client.update_flow_run(ctx.flow_run.id, name=name, tags=sorted({*ctx.flow_run.tags, *tags}))


def run_stage(name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a task; on failure, publish a titled failure artifact and fail the flow with a message that
    names the stage."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    flow = ctx.flow.name if ctx else "-"
    start = time.monotonic()
    try:
        with flow_run_scope(flow_run.get_id()):
            result = fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - re-raised with the stage named
        message = f"stage '{name}' failed: {type(err).__name__}: {err}"
        get_run_logger().error("%s", message)
        publish("stage-failure", f"```\n{message}\n```\n", f"Stage '{name}' failed")
        raise StageFailed(message) from err
    took = time.monotonic() - start
    if took >= SHOWN_STAGE_S:  # quick stages go to the log file only: the terminal stays short (-v shows all)
        progress("%-10s %-13s %6.1f s", flow, name, took)
    else:
        logging.getLogger(__name__).info("%s %s %.1f s", flow, name, took)
    return result


@contextmanager
def gpu_slot(settings: Settings) -> Iterator[None]:
    """Hold one slot of the `gpu` limit so two flows never train on one GPU at once. The slot is leased:
    a killed holder's slot frees itself within ``settings.gpu_lease_seconds`` (see :mod:`pipelines.leases`)."""
    from prefect.runtime import flow_run

    with hold_slot(GPU_LIMIT, lease_seconds=settings.gpu_lease_seconds, holder_run_id=flow_run.get_id()):
        yield


def publish(key: str, markdown: str, title: str) -> None:
    """A markdown artifact under ``key`` whose first line is ``# title`` (the UI lists it by that title)."""
    if not markdown.lstrip().startswith("# "):
        markdown = f"# {title}\n\n{markdown}"
    create_markdown_artifact(markdown=markdown, key=key, description=title)


def deployment_exists(name: str) -> bool:
    """Whether the Prefect API knows deployment ``<flow>/<deployment>`` (never, on the ephemeral server)."""
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except Exception:  # noqa: BLE001 - ObjectNotFound, or an API with no deployments
            return False
    return True
