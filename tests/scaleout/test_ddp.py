"""Lightning DDP with 2 CPU processes (gloo) under torchrun: the same model folder and checkpoint kind as a
single-process run, and only rank 0 logs to MLflow."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from components.data.dataset import load_prepared
from components.models.artifacts import load_model_dir
from components.training.train import train_model
from tests.helpers.configs import PARAMS, cli_overrides, scaleout_cfg
from tests.helpers.engines import child_env, start, stop, tail
from tests.helpers.ports import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
COMMON = ["train.epochs=2", "search.enabled=false", "project.name=scaleout-ddp"]


def _shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}


def _best_ckpt(home: Path) -> dict:
    (ckpt,) = home.glob("runs/final-*/checkpoints/best-*.ckpt")
    return torch.load(ckpt, map_location="cpu", weights_only=False)


def test_ddp_two_cpu_processes_match_single_process(
    mlflow_pg, medpipe_home: Path, prepared_breastmnist: Path, tmp_path: Path, empty_mlflow_db
) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun (torch's launcher) is missing from the environment"
    ddp_home, ddp_out = tmp_path / "ddp-home", tmp_path / "ddp-model"
    argv = [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
            "-m", "medpipe", "-v", "train", "--no-search", "--params", str(PARAMS), "--profile", "smoke",
            "--prepared", str(prepared_breastmnist), "--out", str(ddp_out),
            *cli_overrides(*COMMON, "train.devices=2", "train.strategy=ddp")]  # fmt: skip
    env = child_env(MEDPIPE_HOME=str(ddp_home), MLFLOW_TRACKING_URI=mlflow_pg.url)
    log = tmp_path / "torchrun.log"
    proc = start(argv, log, env)
    try:
        assert proc.wait(timeout=400) == 0, tail(log)
    finally:
        stop(proc)
    text = log.read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in text and "GLOBAL_RANK: 1, MEMBER: 2/2" in text
    assert "distributed_backend=gloo" in text

    # the single-process reference (local SQLite store: a copy of the session's migrated one), same config but
    # one device
    from medpipe.settings import get_settings

    empty_mlflow_db(medpipe_home)

    single = train_model(
        scaleout_cfg(*COMMON).for_training(),
        load_prepared(prepared_breastmnist),
        get_settings(),
        out_dir=tmp_path / "single-model",
    )

    ddp_net, ddp_pre = load_model_dir(ddp_out)
    one_net, one_pre = load_model_dir(single.model_dir)
    assert _shapes(ddp_net.state_dict()) == _shapes(one_net.state_dict())
    assert ddp_pre == one_pre
    assert sorted(p.name for p in ddp_out.iterdir()) == sorted(p.name for p in single.model_dir.iterdir())
    ddp_ckpt, one_ckpt = _best_ckpt(ddp_home), _best_ckpt(medpipe_home)
    assert _shapes(ddp_ckpt["state_dict"]) == _shapes(one_ckpt["state_dict"])
    assert ddp_ckpt["hyper_parameters"] == one_ckpt["hyper_parameters"]
    with torch.inference_mode():
        assert torch.isfinite(ddp_net.eval()(torch.randn(2, 1, 28, 28))).all()

    # rank 0 alone logged: one run, complete, with its validation metrics and the model folder
    client = MlflowClient(mlflow_pg.url)
    exp = client.get_experiment_by_name("scaleout-ddp-training")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["medpipe.world_size"] == "2"
    assert run.data.params["train.strategy"] == "ddp" and run.data.params["train.devices"] == "2"
    assert run.data.metrics["val_auc"] > 0.6  # it learned (test figures come from the served graph's evaluation)
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_auc")]
    assert {0, 1} <= set(steps) and len(steps) == len(set(steps))  # one value per epoch, not one per rank
    logged = {f.path for f in client.list_artifacts(run.info.run_id, "model_dir")}
    assert {"model_dir/model.ckpt", "model_dir/preprocessing.json"} <= logged
