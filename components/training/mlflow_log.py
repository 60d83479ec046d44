"""Explicit-run MLflow logging for training (thread-safe: every call names its run id, no active-run stack),
so parallel Optuna trials in one process each log to their own nested run."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME, MLFLOW_RUN_NOTE

from components.tracking import MAX_PARAM_CHARS, close_orphaned_runs, mlflow_client, owner_tag

PRUNED_TAG = "optuna.trial_state"


def client_for(settings: Any) -> MlflowClient:
    return mlflow_client(settings)


@contextmanager
def tracked_run(
    client: MlflowClient,
    experiment_id: str,
    name: str,
    tags: dict[str, str],
    *,
    parent_run_id: str | None = None,
    run_id: str | None = None,
    system_metrics: bool = False,
    description: str | None = None,
) -> Iterator[str]:
    """Create (or reopen ``run_id``) a run and end it with the right status.

    A pruned Optuna trial ends FINISHED with tag ``optuna.trial_state=PRUNED`` (not FAILED);
    Ctrl-C/SIGTERM ends KILLED; any other error FAILED. ``system_metrics`` samples CPU, memory and GPU
    (``system/*`` metrics, MLflow's own monitor) while the run is open; ``description`` is the run's note.
    """
    import optuna

    if parent_run_id is None:  # a new top-level run: first close the runs that crashed processes left RUNNING
        close_orphaned_runs(client, experiment_id)
    if run_id is None:
        all_tags = {**tags, **owner_tag(), MLFLOW_RUN_NAME: name}
        if parent_run_id:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        run_id = client.create_run(experiment_id, run_name=name, tags=all_tags).info.run_id
    else:
        client.update_run(run_id, status="RUNNING")
        set_tags(client, run_id, {"medpipe.resumed": "true", **owner_tag()})
    if description:
        client.set_tag(run_id, MLFLOW_RUN_NOTE, description)
    monitor = _system_monitor(client, run_id) if system_metrics else None
    try:
        yield run_id
    except optuna.TrialPruned as err:
        client.set_tag(run_id, PRUNED_TAG, "PRUNED")
        client.set_tag(run_id, "optuna.pruned_reason", str(err))
        client.set_terminated(run_id, "FINISHED")
        raise
    except (KeyboardInterrupt, SystemExit):
        client.set_terminated(run_id, "KILLED")
        raise
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    else:
        client.set_terminated(run_id, "FINISHED")
    finally:
        if monitor is not None:
            monitor.finish()


def _system_monitor(client: MlflowClient, run_id: str) -> Any:
    """MLflow's system-metrics sampler (psutil; pynvml on GPU) for ``run_id``, started."""
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=5, tracking_uri=client._tracking_client.tracking_uri)
    monitor.start()
    return monitor


def log_params(client: MlflowClient, run_id: str, params: dict[str, Any]) -> None:
    items = [Param(k, str(v)[:MAX_PARAM_CHARS]) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i : i + 100])


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None and math.isfinite(v)]
    for i in range(0, len(items), 500):
        client.log_batch(run_id, metrics=items[i : i + 500])


def set_tags(client: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
    client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def log_artifacts(client: MlflowClient, run_id: str, paths: list[Path], artifact_path: str | None = None) -> None:
    for p in paths:
        client.log_artifact(run_id, str(p), artifact_path)


class MlflowEpochLogger(L.Callback):
    """Logs val metrics when validation ends and train metrics when the epoch ends (step = epoch); tracks the
    best epoch by ``monitor`` with all of its val metrics (the objective of a trial / a fold)."""

    def __init__(self, client: MlflowClient | None, run_id: str | None, monitor: str = "val_auc") -> None:
        self.client, self.run_id, self.monitor = client, run_id, monitor
        self.best_value: float = -math.inf
        self.best_epoch: int = -1
        self.best_metrics: dict[str, float] = {}

    def _scalars(self, trainer: L.Trainer, prefix: str) -> dict[str, float]:
        return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix) and v.numel() == 1}

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        vals = self._scalars(trainer, "val_")
        score = vals.get(self.monitor)
        if score is not None and score > self.best_value:
            self.best_value, self.best_epoch, self.best_metrics = score, trainer.current_epoch, vals
        if self.client is not None and self.run_id:
            log_metrics(self.client, self.run_id, vals, step=trainer.current_epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.client is None or not self.run_id:
            return
        metrics = self._scalars(trainer, "train_")
        if trainer.optimizers:
            metrics["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        log_metrics(self.client, self.run_id, metrics, step=trainer.current_epoch)


class EpochProgress(L.Callback):
    """Progress lines for the final training (``epoch 3/6  train_loss 0.412  val_auc 0.861``): at most
    ``lines`` of them, every k-th epoch and the last, so a long training does not flood the terminal."""

    def __init__(self, label: str, lines: int = 4) -> None:
        self.label = label
        self.lines = lines

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        epoch, total = trainer.current_epoch + 1, trainer.max_epochs or 1
        if epoch % math.ceil(total / self.lines) and epoch != total:
            return
        from medpipe.progress import progress

        m = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        shown = "  ".join(f"{k} {m[k]:.3f}" for k in ("train_loss", "val_loss", "val_auc") if k in m)
        progress("  %s epoch %d/%d  %s", self.label, epoch, total, shown)
