"""Optuna hyperparameter search: TPE over ``search.space``, pruning on val AUC, every trial a nested MLflow run.

The study lives in ``settings.study_storage`` (SQLite by default, any SQLAlchemy URL, or an Optuna journal
file), is loaded if it exists and stops at ``search.n_trials`` finished trials in total, so an interrupted
search, a rerun or extra workers (``medpipe hpo worker``) all continue the same study.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, wait_fixed

from components.data.dataset import PreparedData, Split
from components.tracking import experiment_name, lineage_tags, log_dataset_inputs, setup_mlflow
from components.training import mlflow_log as ml
from components.training import plots
from components.training.distributed import world_size
from components.training.engine import fit, load_splits, run_params
from components.training.study import open_study, study_name_for, suggest
from medpipe.config import TrainingConfig
from medpipe.errors import MedpipeError
from medpipe.settings import Settings

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PARENT_ATTR = "mlflow_parent_run_id"  # study user attr: the one MLflow parent run every worker logs under
PARENT_WAIT_S = 180.0  # how long a joining worker waits for the worker that creates the parent run
PARENT_POLL_S = 0.5  # ... reading the study's user attrs this often


class _BudgetSpent(Exception):
    """A trial started after earlier trials (finished or running, any worker) already fill search.n_trials."""


@dataclass(frozen=True)
class SearchResult:
    best_params: dict[str, Any]  # dotted config keys -> value (apply with cfg.with_overrides)
    best_value: float  # best val AUC
    study_name: str
    parent_run_id: str
    n_complete: int
    n_pruned: int


def _claim_parent(study: optuna.Study) -> bool:
    """Atomically elect one worker to create the study's parent run: creating a study name is first-writer-wins
    in every Optuna storage (unique name in RDB, ordered log in a journal), so the marker study
    ``<name>.mlflow-parent`` is created by exactly one worker (and deleted once the parent is known)."""
    try:
        study._storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], f"{study.study_name}.mlflow-parent")
    except optuna.exceptions.DuplicatedStudyError:
        return False
    return True


def _release_parent_claim(study: optuna.Study) -> None:
    with contextlib.suppress(KeyError):  # already released
        optuna.delete_study(study_name=f"{study.study_name}.mlflow-parent", storage=study._storage)


def _study_parent(study: optuna.Study, client: Any, exp_id: str) -> tuple[str | None, bool]:
    """(parent run id to reopen, False) or (None, True) when this worker must create the parent run.

    Several ``medpipe hpo worker`` processes starting at once on a fresh study end up under one parent run.
    """
    known = study.user_attrs.get(PARENT_ATTR)
    if known:
        return known, False
    legacy = _parent_run(client, exp_id, study.study_name) if study.trials else None  # studies from before the attr
    if legacy:
        study.set_user_attr(PARENT_ATTR, legacy)
        return legacy, False
    if _claim_parent(study):
        known = study.user_attrs.get(PARENT_ATTR)  # the previous holder may have finished in between
        if known:
            _release_parent_claim(study)
            return known, False
        return None, True
    return _await_parent(study), False


def _await_parent(study: optuna.Study) -> str:
    """The parent run id another worker claimed to create, polled from the study (tenacity) for PARENT_WAIT_S."""

    def gave_up(_: RetryCallState) -> str:
        raise MedpipeError(
            f"study {study.study_name}: another worker claimed the MLflow parent run but did not create it within "
            f"{PARENT_WAIT_S:.0f} s (crashed?). Delete the marker study with `optuna delete-study --study-name "
            f"{study.study_name}.mlflow-parent --storage <MEDPIPE_OPTUNA_STORAGE>` and start the workers again"
        )

    polls = Retrying(
        retry=retry_if_result(lambda known: not known),
        stop=stop_after_delay(PARENT_WAIT_S),
        wait=wait_fixed(PARENT_POLL_S),
        retry_error_callback=gave_up,
    )
    return polls(lambda: study.user_attrs.get(PARENT_ATTR))


def _over_budget(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """True when the trials numbered before ``trial`` that have not failed already fill ``n_trials``.

    Trial numbers are handed out by the storage in creation order, so with any number of workers at most
    ``n_trials`` trials pass this check and finish (a surplus trial fails at once, without training).
    """
    alive = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    ahead = study.get_trials(deepcopy=False, states=alive)
    return sum(t.number < trial.number for t in ahead) >= n_trials


def _worker_id() -> str:
    """host:pid of this search process (tags each trial run: which worker ran it)."""
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


def _parent_run(client: Any, exp_id: str, study: str) -> str | None:
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.`medpipe.study_name` = '{study}' and tags.`medpipe.run_kind` = 'search'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


# --- the search ----------------------------------------------------------------------------------


def run_search(cfg: TrainingConfig, prepared: PreparedData, settings: Settings) -> SearchResult:
    """Run (or resume) the study until ``search.n_trials`` trials have finished (complete or pruned)."""
    s = cfg.search
    if not s.space:
        raise MedpipeError("search.space is empty: declare at least one parameter in params.yaml to search")
    if world_size(cfg.train) > 1:
        raise MedpipeError(
            "the Optuna search does not run under DDP (train.devices/num_nodes > 1 or a ddp strategy): search with "
            "one device per trial (`medpipe hpo worker --study NAME` once per GPU or machine), then train the final "
            "model distributed with `medpipe train --no-search -S search.enabled=false -S train.devices=N ...`"
        )
    name = study_name_for(cfg, prepared)
    study = open_study(s, name, settings, seed=cfg.train.seed)
    client = ml.client_for(settings)
    exp_id = setup_mlflow(settings, experiment_name(cfg.project.name, "training"))
    tags = lineage_tags(cfg.lineage(), prepared.data_version, settings)
    splits = load_splits(prepared, cfg.train)
    existing, create = _study_parent(study, client, exp_id)
    parent_tags = {**tags, "medpipe.run_kind": "search", "medpipe.study_name": name}

    description = (
        f"Optuna search over {', '.join(s.space)} ({s.n_trials} trials, {s.sampler} sampler, {s.pruner} pruner) "
        f"on `{cfg.project.name}` data version `{prepared.data_version}`; trials are the child runs. "
        "Plots: search/optimization_history.png, search/parallel_coordinates.png, search/importances.png."
    )
    with ml.tracked_run(
        client, exp_id, name, parent_tags, run_id=existing, system_metrics=True, description=description
    ) as parent:
        if create:
            study.set_user_attr(PARENT_ATTR, parent)
            _release_parent_claim(study)
            log_dataset_inputs(client, parent, cfg.project.name, prepared, ("train", "val"))
        space = {f"space.{k}": json.dumps(v.model_dump(exclude_none=True)) for k, v in s.space.items()}
        ml.log_params(client, parent, space)
        # tags, not params: a resumed study may run with another n_trials / n_jobs / pruner
        run_tags = {"storage": settings.study_storage.split("@")[-1], "sampler": s.sampler, "pruner": s.pruner,
                    "n_trials": s.n_trials, "n_jobs": s.n_jobs}  # fmt: skip
        ml.set_tags(client, parent, {f"search.{k}": str(v) for k, v in run_tags.items()})
        done = sum(t.state in FINISHED for t in study.trials)
        remaining = s.n_trials - done
        if remaining > 0:
            log.info("study %s: %d trials finished, running %d more", name, done, remaining)
            objective = _Objective(cfg, prepared, settings, splits, client, exp_id, parent, tags, name)
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=s.timeout_s,
                n_jobs=s.n_jobs,
                callbacks=[
                    optuna.study.MaxTrialsCallback(s.n_trials, states=FINISHED),
                    functools.partial(_trial_progress, s.n_trials),
                ],
                catch=(torch.OutOfMemoryError, _BudgetSpent),
                gc_after_trial=True,
            )
        return _summarise(study, client, parent)


def _trial_progress(n_trials: int, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """One progress line per finished trial: its state, value, the best so far and the drawn params."""
    from medpipe.progress import progress

    if trial.user_attrs.get("medpipe.surplus"):
        return
    value = f"val_auc {trial.value:.4f}" if trial.value is not None else trial.state.name.lower()
    try:
        best = f"best {study.best_value:.4f}"
    except ValueError:  # no completed trial yet
        best = "best -"
    drawn = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    progress("  trial %d/%d  %s  (%s)  %s", trial.number + 1, n_trials, value, best, drawn)


@dataclass
class _Objective:
    cfg: TrainingConfig
    prepared: PreparedData
    settings: Settings
    splits: dict[str, Split]
    client: Any
    exp_id: str
    parent: str
    tags: dict[str, str]
    study_name: str

    def __call__(self, trial: optuna.Trial) -> float:
        from optuna_integration import PyTorchLightningPruningCallback

        if _over_budget(trial.study, trial, self.cfg.search.n_trials):
            trial.set_user_attr("medpipe.surplus", True)
            trial.study.stop()
            raise _BudgetSpent(f"trial {trial.number}: search.n_trials={self.cfg.search.n_trials} already reached")
        overrides = suggest(trial, self.cfg.search.space)
        tcfg = self.cfg.with_overrides(overrides)
        tags = {**self.tags, "medpipe.run_kind": "trial", "medpipe.study_name": self.study_name,
                "optuna.trial_number": str(trial.number), "medpipe.worker": _worker_id()}  # fmt: skip
        with ml.tracked_run(self.client, self.exp_id, f"trial-{trial.number}", tags, parent_run_id=self.parent) as rid:
            trial.set_user_attr("mlflow_run_id", rid)
            ml.log_params(self.client, rid, run_params(tcfg, self.prepared))
            with tempfile.TemporaryDirectory(prefix="medpipe-trial-") as work:
                out = fit(
                    tcfg, self.prepared, self.settings, self.splits, client=self.client, run_id=rid,
                    callbacks=[PyTorchLightningPruningCallback(trial, monitor="val_auc")], work_dir=Path(work),
                )  # fmt: skip
            ml.log_metrics(self.client, rid, {f"best_val_{k}": v for k, v in out.val_metrics.items()})
            ml.set_tags(self.client, rid, {ml.PRUNED_TAG: "COMPLETE"})
        return out.best_value


def _summarise(study: optuna.Study, client: Any, parent: str) -> SearchResult:
    """Best params, counts, importances and history plot onto the parent run."""
    states = [t.state for t in study.trials]
    n_complete, n_pruned = states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED)
    n_failed = sum(t.state == TrialState.FAIL and not t.user_attrs.get("medpipe.surplus") for t in study.trials)
    if n_complete == 0 and TrialState.RUNNING in states:  # budget spent, other workers still finishing theirs
        log.info("study %s: no trial complete yet, %d running in other workers", study.study_name,
                 states.count(TrialState.RUNNING))  # fmt: skip
        return SearchResult({}, float("nan"), study.study_name, parent, n_complete, n_pruned)
    ml.log_metrics(client, parent, {"n_complete": n_complete, "n_pruned": n_pruned, "n_failed": n_failed})
    if n_complete == 0:
        raise MedpipeError(
            f"study {study.study_name}: no trial completed ({n_pruned} pruned, {n_failed} failed); "
            "loosen search.prune_below / the pruner or widen search.space"
        )
    best = study.best_trial
    # tags, not params: the best trial changes as a resumed study goes on
    ml.set_tags(client, parent, {f"best.{k}": str(v) for k, v in best.params.items()})
    ml.log_metrics(client, parent, {"best_val_auc": best.value, "best_trial": best.number})
    ml.set_tags(client, parent, {"medpipe.best_trial_run_id": best.user_attrs.get("mlflow_run_id", "")})
    with tempfile.TemporaryDirectory(prefix="medpipe-search-") as tmp:
        tmp_dir = Path(tmp)
        paths = [plots.search_history_png(study, tmp_dir / "optimization_history.png")]
        if n_complete >= 2:
            paths.append(plots.parallel_coordinates_png(study, tmp_dir / "parallel_coordinates.png"))
        study.trials_dataframe().to_csv(tmp_dir / "trials.csv", index=False)
        paths.append(tmp_dir / "trials.csv")
        if n_complete >= 2:
            try:
                imp = optuna.importance.get_param_importances(study)
            except (RuntimeError, ValueError) as err:  # e.g. every completed trial drew the same values
                log.warning("parameter importances unavailable: %s", err)
            else:
                ml.log_metrics(client, parent, {f"importance.{k}": v for k, v in imp.items()})
                (tmp_dir / "param_importances.json").write_text(json.dumps(imp, indent=2))
                paths += [tmp_dir / "param_importances.json", plots.importances_png(imp, tmp_dir / "importances.png")]
        ml.log_artifacts(client, parent, paths, "search")
    return SearchResult(
        best_params=dict(best.params),
        best_value=float(best.value),
        study_name=study.study_name,
        parent_run_id=parent,
        n_complete=n_complete,
        n_pruned=n_pruned,
    )


def run_worker(cfg: TrainingConfig, prepared: PreparedData, settings: Settings, study_name: str) -> SearchResult:
    """Join study ``study_name`` (created if missing) and run trials until it holds ``search.n_trials``."""
    return run_search(cfg.with_overrides({"search.study_name": study_name}), prepared, settings)
