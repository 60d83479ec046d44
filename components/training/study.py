"""Optuna plumbing of the search: the study's name, storage, sampler and pruner, and one draw of the space."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import optuna
from tenacity import Retrying, before_sleep_log, retry_if_exception_type, stop_after_attempt, wait_incrementing

from components.data.dataset import PreparedData
from components.tracking import short_hash
from medpipe.config import SearchConfig, SearchParam, TrainingConfig
from medpipe.settings import Settings

log = logging.getLogger(__name__)


def study_name_for(cfg: TrainingConfig, prepared: PreparedData) -> str:
    """``search.study_name`` or ``<project>-search-<hash>`` over the space, the fixed params and the data,
    so a rerun with the same inputs resumes its study and any change starts a new one."""
    if cfg.search.study_name:
        return cfg.search.study_name
    dumped = cfg.model_dump(mode="json")
    key = {s: dumped[s] for s in ("data", "augment", "model", "train")}
    key["space"] = dumped["search"]["space"]
    key["data_version"] = prepared.data_version or str(Path(prepared.path).resolve())
    return f"{cfg.project.name}-search-{short_hash(json.dumps(key, sort_keys=True))[:8]}"


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """SQLite/SQLAlchemy URL -> RDBStorage (with heartbeats: a killed trial is failed and retried);
    ``journal:PATH`` or a ``.log``/``.jsonl`` path -> JournalStorage (safe for several worker processes)."""
    from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend

    if url.startswith("journal:") or url.endswith((".log", ".jsonl")):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    # Workers starting together on an empty database race to create Optuna's tables: the loser sees a duplicate
    # key (IntegrityError) or a half-made schema (ProgrammingError) and simply tries again.
    create = Retrying(
        stop=stop_after_attempt(4),
        wait=wait_incrementing(start=1.0, increment=1.0),
        retry=retry_if_exception_type((IntegrityError, ProgrammingError)),
        before_sleep=before_sleep_log(log, logging.INFO),
        reraise=True,
    )

    def rdb() -> RDBStorage:
        with warnings.catch_warnings():  # heartbeats and the retry callback are flagged experimental in Optuna 5
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=30,
                grace_period=120,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )

    return create(rdb)


class _AnyPruner(optuna.pruners.BasePruner):
    """Prune when any of the wrapped pruners says so."""

    def __init__(self, pruners: list[optuna.pruners.BasePruner]) -> None:
        self.pruners = pruners

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return any(p.prune(study, trial) for p in self.pruners)


def make_pruner(s: SearchConfig) -> optuna.pruners.BasePruner:
    pruners: list[optuna.pruners.BasePruner] = []
    if s.pruner == "median":
        pruners.append(
            optuna.pruners.MedianPruner(n_startup_trials=s.pruner_startup_trials, n_warmup_steps=s.pruner_warmup_epochs)
        )
    elif s.pruner == "hyperband":
        pruners.append(optuna.pruners.HyperbandPruner(min_resource=max(1, s.pruner_warmup_epochs)))
    if s.prune_below is not None:
        pruners.append(optuna.pruners.ThresholdPruner(lower=s.prune_below, n_warmup_steps=s.pruner_warmup_epochs))
    if not pruners:
        return optuna.pruners.NopPruner()
    return pruners[0] if len(pruners) == 1 else _AnyPruner(pruners)


def make_sampler(s: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    if s.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=s.n_jobs > 1)


def open_study(s: SearchConfig, name: str, settings: Settings, *, seed: int) -> optuna.Study:
    """Create or load study ``name`` in ``settings.study_storage``; its sampler is seeded with ``seed``
    (``train.seed``)."""
    study = optuna.create_study(
        study_name=name,
        storage=make_storage(settings.study_storage),
        direction="maximize",
        sampler=make_sampler(s, seed),
        pruner=make_pruner(s),
        load_if_exists=True,
    )
    if study.trials:  # resumed / joined: a fresh seed, or the random start-up trials would repeat the first ones
        study.sampler = make_sampler(s, seed + len(study.trials))
    return study


def suggest(trial: optuna.Trial, space: dict[str, SearchParam]) -> dict[str, Any]:
    """Draw one value per dotted config key."""
    out: dict[str, Any] = {}
    for key, p in space.items():
        if p.type == "categorical":
            out[key] = trial.suggest_categorical(key, p.choices)
        elif p.type == "int":
            out[key] = trial.suggest_int(key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            out[key] = trial.suggest_float(key, p.low, p.high, step=p.step, log=p.log)
    return out
