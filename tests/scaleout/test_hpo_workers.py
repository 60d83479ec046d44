"""Two ``medpipe hpo worker`` processes on one PostgreSQL-backed Optuna study and the PG-backed MLflow server."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from components.training.search import PARENT_ATTR
from components.training.study import make_storage
from tests.helpers.configs import PARAMS, cli_overrides
from tests.helpers.engines import child_env, start, stop, tail

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
N_TRIALS = 4


def test_two_workers_share_one_study_and_one_parent_run(
    mlflow_pg, pg_database: str, prepared_breastmnist: Path, tmp_path: Path
) -> None:
    study = "scaleout-two-workers"
    argv = [sys.executable, "-m", "medpipe", "hpo", "worker", "--study", study, "--params", str(PARAMS),
            "--profile", "smoke", "--prepared", str(prepared_breastmnist),
            *cli_overrides("train.epochs=1", f"search.n_trials={N_TRIALS}", "project.name=scaleout-hpo")]  # fmt: skip
    procs, logs = [], []
    try:
        for i in range(2):  # like two machines: each its own state folder, shared study + tracking server
            env = child_env(
                MEDPIPE_HOME=str(tmp_path / f"worker{i}"),
                MEDPIPE_OPTUNA_STORAGE=pg_database,
                MLFLOW_TRACKING_URI=mlflow_pg.url,
            )
            logs.append(tmp_path / f"worker{i}.log")
            procs.append(start(argv, logs[-1], env))
        for proc, log in zip(procs, logs, strict=True):
            assert proc.wait(timeout=400) == 0, tail(log)
    finally:
        for proc in procs:
            stop(proc)

    trials = optuna.load_study(study_name=study, storage=make_storage(pg_database)).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == N_TRIALS, [(t.number, t.state) for t in trials]
    # a trial beyond the budget (both workers asked at once) fails at once, marked, and trains nothing
    assert all(t.user_attrs.get("medpipe.surplus") for t in trials if t not in finished)
    assert len({t.number for t in trials}) == len(trials)

    client = MlflowClient(mlflow_pg.url)
    exp = client.get_experiment_by_name("scaleout-hpo-training")
    parents = client.search_runs([exp.experiment_id], f"tags.`medpipe.study_name` = '{study}' and "
                                 "tags.`medpipe.run_kind` = 'search'")  # fmt: skip
    assert len(parents) == 1, "two workers must share one parent run"
    parent = parents[0].info.run_id
    stored = optuna.load_study(study_name=study, storage=make_storage(pg_database)).user_attrs
    assert stored[PARENT_ATTR] == parent
    assert f"{study}.mlflow-parent" not in optuna.get_all_study_names(make_storage(pg_database))  # claim released

    runs = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent}'")
    numbers = Counter(r.data.tags["optuna.trial_number"] for r in runs)
    assert sorted(numbers) == sorted(str(t.number) for t in finished)  # every trial a run, none twice
    assert set(numbers.values()) == {1}
    for t in finished:
        run = client.get_run(t.user_attrs["mlflow_run_id"])
        assert run.info.status == "FINISHED" and run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.metrics["best_val_auc"] == pytest.approx(t.value)
    workers = Counter(r.data.tags["medpipe.worker"] for r in runs)
    assert len(workers) == 2, f"both workers must have run trials: {dict(workers)}"
    assert client.get_run(parent).data.metrics["n_complete"] == N_TRIALS
