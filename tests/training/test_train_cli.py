"""`medpipe train --direct` through the real CLI: search + train into --out, with its MLflow runs, and no flow,
registration or gate (what DDP ranks under torchrun run too)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.helpers.configs import PARAMS
from tests.helpers.data import CLASS_NAMES

# trains (a 1-trial search, then the final model, 1 epoch each): ~6 s of CPU after the imports, ~25 s alone
pytestmark = pytest.mark.slow


def test_train_direct_writes_the_model_and_its_runs_and_registers_nothing(
    prepared_breastmnist: Path, settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from components.models.artifacts import load_model_dir
    from medpipe.cli import app

    out, prefect_home = tmp_path / "model", tmp_path / "prefect"
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home))  # where a flow run's temporary server would keep its db
    args = ["train", "--direct", "--prepared", str(prepared_breastmnist), "--out", str(out), "--params", str(PARAMS),
            "--profile", "smoke", "-S", "train.epochs=1", "-S", "search.n_trials=1",
            "-S", "train.num_workers=0"]  # fmt: skip
    threads = torch.get_num_threads()  # the smoke profile's train.cpu_threads is set for the whole process
    try:
        result = CliRunner().invoke(app, args)
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output

    net, preprocessing = load_model_dir(out)  # the folder export and registration take: weights + preprocessing
    assert net(torch.zeros(1, 1, 28, 28)).shape == (1, 2) and list(preprocessing.class_names) == list(CLASS_NAMES)
    assert f"model folder: {out}  checkpoint: " in result.output and "best params: " in result.output
    run_id = re.search(r"^MLflow run: +(\w+)$", result.output, re.MULTILINE).group(1)  # whole: copy-pasteable

    client = MlflowClient(settings.tracking_uri)
    final = client.get_run(run_id)
    assert final.info.status == "FINISHED" and "val_auc" in final.data.metrics
    search = client.get_run(final.data.tags["mlflow.parentRunId"])  # the final run is the search's child
    assert search.data.tags["medpipe.final_run_id"] == run_id
    assert client.search_registered_models() == []  # no registration, hence no gate and no champion
    assert not (prefect_home / "prefect.db").exists()  # and no flow run
