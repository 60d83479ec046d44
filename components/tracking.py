"""MLflow tracking set-up and lineage tags, shared by every stage that logs a run.

(The registry engineer owns and extends this module: retries on an unreachable server, etc.)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from medpipe import __version__
from medpipe.config import PipelineConfig
from medpipe.settings import Settings


def experiment_name(cfg: PipelineConfig, kind: str = "training") -> str:
    """Experiments are named after the dataset/pipeline: ``<project>-<kind>``."""
    return f"{cfg.project.name}-{kind}"


def setup_mlflow(settings: Settings, experiment: str) -> str:
    """Point MLflow at the configured store and make sure ``experiment`` exists; returns its id."""
    import mlflow

    settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    found = mlflow.get_experiment_by_name(experiment)
    exp_id = found.experiment_id if found else mlflow.create_experiment(experiment, settings.artifact_location)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def lineage_tags(cfg: PipelineConfig, data_version: str | None, settings: Settings) -> dict[str, str]:
    """Tags that lead from a run or model version back to the exact data, code and params."""
    commit = _git(["rev-parse", "HEAD"], settings.project_dir)
    dirty = _git(["status", "--porcelain", "--untracked-files=no"], settings.project_dir)
    tags = {
        "medpipe.data_version": data_version or "unknown",
        "medpipe.git_commit": commit or "unknown",
        "medpipe.git_dirty": str(bool(dirty)).lower() if dirty is not None else "unknown",
        "medpipe.params_hash": cfg.params_hash(),
        "medpipe.version": __version__,
        "medpipe.dataset": cfg.data.source,
    }
    flow_run_id = os.environ.get("PREFECT__FLOW_RUN_ID") or _prefect_flow_run_id()
    if flow_run_id:
        tags["medpipe.prefect_flow_run_id"] = flow_run_id
    return tags


def _prefect_flow_run_id() -> str | None:
    """The id of the Prefect flow run we are inside, if any (without importing Prefect when it isn't loaded)."""
    import sys

    if "prefect" not in sys.modules:
        return None
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return str(ctx.flow_run.id) if ctx and ctx.flow_run else None


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
