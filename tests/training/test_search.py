"""Optuna search: pruned trials recorded as pruned, an interrupted study resumes, a worker joins it."""

from __future__ import annotations

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from typer.testing import CliRunner

from components.data.dataset import load_prepared
from components.training.search import run_search
from components.training.study import make_storage, study_name_for
from medpipe.cli import app
from medpipe.errors import MedpipeError
from tests.helpers.configs import PARAMS, smoke_training

pytestmark = pytest.mark.slow
FAST = ["train.epochs=2", "train.early_stopping_patience=0", "search.enabled=true", "search.pruner=median"]


def _children(settings, parent: str):
    client = MlflowClient(settings.tracking_uri)
    exp = client.get_run(parent).info.experiment_id
    return client.search_runs([exp], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")


def test_pruned_trials_show_as_pruned_then_study_continues(prepared_breastmnist, settings) -> None:
    prepared = load_prepared(prepared_breastmnist)
    must_prune = smoke_training(*FAST, "search.n_trials=2", "search.prune_below=0.999", "search.pruner_warmup_epochs=0")
    with pytest.raises(MedpipeError, match="no trial completed \\(2 pruned"):
        run_search(must_prune, prepared, settings)
    name = study_name_for(must_prune, prepared)
    study = optuna.load_study(study_name=name, storage=make_storage(settings.study_storage))
    assert [t.state for t in study.trials] == [TrialState.PRUNED, TrialState.PRUNED]
    run_ids = [t.user_attrs["mlflow_run_id"] for t in study.trials]
    client = MlflowClient(settings.tracking_uri)
    for rid in run_ids:
        run = client.get_run(rid)
        assert run.info.status == "FINISHED"  # not FAILED
        assert run.data.tags["optuna.trial_state"] == "PRUNED"
        assert len(client.get_metric_history(rid, "val_auc")) == 1  # stopped after its first epoch

    # same study (the pruner settings are not part of its identity): one more trial, this one completes
    result = run_search(smoke_training(*FAST, "search.n_trials=3"), prepared, settings)
    assert result.study_name == name and (result.n_pruned, result.n_complete) == (2, 1)
    assert set(result.best_params) == {"train.lr", "model.dropout"}
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["medpipe.run_kind"] == "search"
    assert "best.train.lr" in parent.data.tags and parent.data.metrics["best_val_auc"] == result.best_value
    assert {r.info.run_id for r in _children(settings, result.parent_run_id)} >= set(run_ids)
    assert "search/optimization_history.png" in {a.path for a in client.list_artifacts(result.parent_run_id, "search")}


def test_interrupted_search_resumes_same_study(prepared_breastmnist, settings) -> None:
    """A search stopped early (timeout) is continued by a rerun / an hpo worker: trial count grows to n_trials."""
    prepared = load_prepared(prepared_breastmnist)
    base = [*FAST, "train.epochs=1", "search.n_trials=3", "search.study_name=resume-me"]
    first = run_search(smoke_training(*base, "search.timeout_s=0.01"), prepared, settings)
    assert first.n_complete + first.n_pruned == 1

    out = CliRunner().invoke(
        app,
        ["hpo", "worker", "--study", "resume-me", "--params", str(PARAMS), "--profile", "smoke",
         "--prepared", str(prepared_breastmnist), *[a for o in base for a in ("-S", o)]],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "resume-me" in out.output
    study = optuna.load_study(study_name="resume-me", storage=make_storage(settings.study_storage))
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert len({t.params["train.lr"] for t in study.trials}) == 3  # the resumed sampler does not repeat trial 0
    assert len(_children(settings, first.parent_run_id)) == 3  # the same parent run collected every trial
    again = run_search(smoke_training(*base), prepared, settings)  # complete: nothing left to run
    assert len(optuna.load_study(study_name="resume-me", storage=make_storage(settings.study_storage)).trials) == 3
    assert again.parent_run_id == first.parent_run_id
