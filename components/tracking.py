"""MLflow tracking set-up and lineage tags, shared by every stage that logs a run.

The store is one URI from settings: ``sqlite:///<state>/mlflow.db`` by default, any ``http(s)://``
MLflow server by environment. Calls to a remote server are retried with exponential backoff, and
an unreachable server ends in a :class:`RegistryError` that says what to check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_attempt, wait_exponential

from medpipe import __version__
from medpipe.config import Lineage, RegistryConfig
from medpipe.errors import RegistryError, is_transient
from medpipe.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from components.data.dataset import PreparedData


def experiment_name(project: str, kind: str = "training") -> str:
    """Experiments are named after the dataset/pipeline: ``<project>-<kind>`` (``project``: ``project.name``)."""
    return f"{project}-{kind}"


MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry idempotent calls to a remote tracking server: ``retries`` more attempts after the first,
    waiting ``backoff_s * 2**i``; ``hint`` (what the user can do) ends the final error message."""

    retries: int = 3
    backoff_s: float = 1.0
    hint: str = ""

    @classmethod
    def for_registry(cls, reg: RegistryConfig, hint: str = "") -> RetryPolicy:
        """The policy of the ``registry:`` params (registry.retries, registry.retry_backoff_s)."""
        return cls(retries=reg.retries, backoff_s=reg.retry_backoff_s, hint=hint)


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def with_retries(fn: Callable[[], T], *, what: str, uri: str, policy: RetryPolicy = RetryPolicy()) -> T:
    """Call ``fn``; on a transient failure (:func:`medpipe.errors.is_transient`) retry it as ``policy`` says.

    Only wrap idempotent calls (lookups, tags, aliases). A deterministic error is raised at once; the last
    transient failure becomes a :class:`RegistryError` naming ``uri`` and what to do (``policy.hint``).
    """
    retrying = Retrying(
        stop=stop_after_attempt(policy.retries + 1),
        wait=wait_exponential(multiplier=policy.backoff_s, min=policy.backoff_s, max=60),
        retry=retry_if_exception(is_transient),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    try:
        return retrying(fn)
    except Exception as err:
        if not is_transient(err):
            raise
        raise RegistryError(
            f"{what}: the MLflow tracking server {uri} is unreachable after {policy.retries + 1} attempts ({err}). "
            "Check that it is running (`medpipe ui mlflow` starts a local one) or set MLFLOW_TRACKING_URI / "
            f"MEDPIPE_MLFLOW_TRACKING_URI.{(' ' + policy.hint) if policy.hint else ''}"
        ) from err


def mlflow_client(settings: Settings) -> MlflowClient:
    """A client on the configured tracking and registry stores (touches no global MLflow state)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def require_existing_store(settings: Settings) -> None:
    """Fail when a SQLite tracking/registry store is missing: MLflow would silently create an empty one, and a
    reader (the server) would then find no model instead of saying the store is gone."""
    for uri in dict.fromkeys((settings.tracking_uri, settings.registry_uri)):
        if uri.startswith("sqlite:///") and not (path := Path(uri.removeprefix("sqlite:///"))).is_file():
            raise RegistryError(
                f"the MLflow store {path} does not exist (moved, deleted, or another MEDPIPE_HOME?). "
                "Point MEDPIPE_HOME / MLFLOW_TRACKING_URI at the store that holds the registered models, "
                "or train and register one first (`medpipe run`)"
            )


def use_tracking_store(settings: Settings) -> None:
    """Point MLflow's module-level API (``mlflow.*``, ``mlflow.artifacts``, ``load_model``) at the configured
    tracking and registry stores. MLflow also exports both to the environment (``MLFLOW_TRACKING_URI``,
    ``MLFLOW_REGISTRY_URI``); a :class:`Settings` already built never changes, one built later sees this store."""
    import mlflow

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)


def ensure_reachable(settings: Settings, policy: RetryPolicy = RetryPolicy()) -> None:
    """Fail fast (bounded retries, short timeouts) when a remote tracking server does not answer ``/health``."""
    uri = settings.tracking_uri
    if not is_remote(uri):
        settings.home.mkdir(parents=True, exist_ok=True)
        return

    def probe() -> None:
        import httpx

        response = httpx.get(uri.rstrip("/") + "/health", timeout=5)
        if response.status_code >= 500:  # any other answer (auth, an older server without /health): reachable
            response.raise_for_status()

    with_retries(probe, what="connecting to MLflow", uri=uri, policy=policy)


def setup_mlflow(settings: Settings, experiment: str, policy: RetryPolicy = RetryPolicy()) -> str:
    """Point MLflow at the configured store and make sure ``experiment`` exists; returns its id.

    Raises :class:`RegistryError` (after bounded retries) when a remote server is unreachable.
    """
    import mlflow

    ensure_reachable(settings, policy)
    use_tracking_store(settings)

    def get_or_create() -> str:
        found = mlflow.get_experiment_by_name(experiment)
        return found.experiment_id if found else mlflow.create_experiment(experiment, settings.artifact_location)

    exp_id = with_retries(
        get_or_create, what=f"opening experiment {experiment!r}", uri=settings.tracking_uri, policy=policy
    )
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def lineage_tags(lineage: Lineage, data_version: str | None, settings: Settings) -> dict[str, str]:
    """Tags that lead from a run or model version back to the exact data, code and params."""
    commit = _git(["rev-parse", "HEAD"], settings.project_dir)
    dirty = _git(["status", "--porcelain", "--untracked-files=no"], settings.project_dir)
    tags = {
        "medpipe.data_version": data_version or "unknown",
        "medpipe.git_commit": commit or "unknown",
        "medpipe.git_dirty": str(bool(dirty)).lower() if dirty is not None else "unknown",
        "medpipe.params_hash": lineage.params_hash,
        "medpipe.version": __version__,
        "medpipe.dataset": lineage.dataset,
    }
    flow_run_id = current_flow_run_id()
    if flow_run_id:
        tags["medpipe.prefect_flow_run_id"] = flow_run_id
    return tags


# What a model version carries as tags (search and list views): lineage, the verdicts and one headline
# number. Everything else (latencies, every gate check, CIs) is in the version's model card / description.
_VERSION_TAG_KEYS = frozenset(
    {
        "export.parity_passed",
        "parity.max_abs_diff",
        "gate.decision",
        "gate.reason",
        "gate.failed",
        "gate.override",
        "explain.road",
        "explain.road_images",
    }  # fmt: skip
)


def version_tags(tags: dict[str, str], primary_metric: str) -> dict[str, str]:
    """The subset of ``tags`` that goes on a model version (about a dozen); the rest belongs in the card."""
    keep = {f"test.{primary_metric}", f"gate.challenger.{primary_metric}"}
    return {k: v for k, v in tags.items() if k.startswith("medpipe.") or k in _VERSION_TAG_KEYS or k in keep}


def run_name(lineage: Lineage, suffix: str = "") -> str:
    """A readable run name: ``<dataset>-<model>-<profile>`` (``breastmnist-cnn-smoke``), plus ``suffix``."""
    name = f"{lineage.project}-{lineage.model}-{lineage.profile or 'custom'}"
    return f"{name}-{suffix}" if suffix else name


def log_dataset_inputs(
    client: MlflowClient,
    run_id: str,
    name: str,
    prepared: PreparedData,
    splits: tuple[str, ...] = ("train", "val", "test"),
) -> None:
    """Log the prepared splits as the run's dataset inputs (``mlflow.log_input``): name, DVC data version as
    the digest, the folder as source, and the class counts as profile, one input per split (its context)."""
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag

    version = prepared.data_version or "unversioned"
    source = json.dumps({"uri": str(prepared.path), "dvc_md5": version})
    inputs = [
        DatasetInput(
            Dataset(
                name=f"{name}-{split}",
                digest=version.removesuffix(".dir")[:36],
                source_type="dvc" if prepared.data_version else "local",
                source=source,
                profile=json.dumps(
                    {
                        "num_rows": sum(prepared.counts.get(split, {}).values()),
                        "classes": prepared.counts.get(split, {}),
                    }
                ),  # fmt: skip
            ),
            tags=[InputTag("mlflow.data.context", split)],
        )
        for split in splits
        if split in prepared.counts
    ]
    client.log_inputs(run_id, datasets=inputs)


_FLOW_RUN: ContextVar[str | None] = ContextVar("medpipe_flow_run_id", default=None)


@contextmanager
def flow_run_scope(flow_run_id: str | None) -> Iterator[None]:
    """Work done inside is done for this orchestrator run: lineage tags and audit events record its id.

    The flows open it around each stage (``pipelines.runtime.run_stage``); components never ask the
    orchestrator themselves."""
    token = _FLOW_RUN.set(flow_run_id)
    try:
        yield
    finally:
        _FLOW_RUN.reset(token)


def current_flow_run_id() -> str | None:
    """The orchestrator run this work is done for (see :func:`flow_run_scope`), or None."""
    return _FLOW_RUN.get()


OWNER_TAG = "medpipe.owner"  # host:pid:process-start of the process that keeps a run RUNNING


def owner_tag() -> dict[str, str]:
    """Tag a run with the process that owns it, so a later start can tell a crashed run from a live one."""
    import psutil

    me = psutil.Process()
    return {OWNER_TAG: f"{socket.gethostname()}:{me.pid}:{me.create_time():.0f}"}


def _owner_alive(owner: str) -> bool | None:
    """Whether the owning process still runs: None when it ran on another host (cannot tell from here)."""
    import psutil

    host, pid, started = owner.rsplit(":", 2)
    if host != socket.gethostname():
        return None
    try:
        return f"{psutil.Process(int(pid)).create_time():.0f}" == started
    except psutil.NoSuchProcess:
        return False


def close_orphaned_runs(client: MlflowClient, experiment_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs of ``experiment_id`` whose owning process on this host is gone (SIGKILL,
    OOM, a dead worker), so a crashed run does not stay RUNNING forever. Returns their ids."""
    from mlflow.entities import ViewType

    runs = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", run_view_type=ViewType.ACTIVE_ONLY
    )
    closed = []
    for run in runs:
        owner = run.data.tags.get(OWNER_TAG)
        if owner and _owner_alive(owner) is False:
            client.set_tag(run.info.run_id, "medpipe.killed_reason", f"its process {owner} died while it ran")
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
            log.warning("MLflow run %s was left RUNNING by a dead process (%s): marked KILLED", run.info.run_id, owner)
    return closed


def flat_params(tree: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """MLflow params of a config tree: ``{"train": {"lr": 0.1}}`` -> ``{"train.lr": "0.1"}``; a list as JSON, a
    value cut to MLflow's 6,000 characters. Training, search and registration runs log the same strings."""
    out: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = (json.dumps(value) if isinstance(value, list) else str(value))[:MAX_PARAM_CHARS]
    return out


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]
