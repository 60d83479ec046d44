"""Real Lightning training on BreastMNIST: metrics, model folder, MLflow run, resume after a kill."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from components.data.dataset import load_prepared, load_split
from components.models.artifacts import load_model_dir
from components.training.module import METRIC_NAMES
from components.training.train import TrainResult, train_model
from medpipe.settings import Settings
from tests.helpers.configs import REPO_ROOT, smoke_training
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(
    prepared_breastmnist: Path, tmp_path_factory: pytest.TempPathFactory, empty_mlflow_db
) -> Iterator[tuple[TrainResult, Settings]]:
    """One smoke-profile training run (shared by the assertions below and the transfer test module)."""
    home = tmp_path_factory.mktemp("train-home")
    empty_mlflow_db(home)
    # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI, which Settings prefers: keep this module's store
    # in the environment for its tests, and clear what an earlier test module left there
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        settings = Settings(home=home)
        cfg = smoke_training("search.enabled=false", "train.tta=true")
        result = train_model(cfg, load_prepared(prepared_breastmnist), settings, out_dir=home / "model")
        yield result, settings


def test_smoke_training_learns_breastmnist(trained: tuple[TrainResult, Settings]) -> None:
    result, _ = trained
    assert result.val_metrics["auc"] > 0.75, result.val_metrics
    assert set(METRIC_NAMES) <= set(result.val_metrics)
    assert result.checkpoint.is_file() and result.checkpoint.name.startswith("best-")
    assert result.best_params == {} and result.search_run_id is None


def test_served_graph_carries_tta_and_is_what_is_evaluated(
    trained: tuple[TrainResult, Settings], prepared_breastmnist: Path, tmp_path: Path
) -> None:
    """train.tta=true goes into the exported graph (image + h-flip averaged): the test figures logged on the run
    are those of that graph through ONNX Runtime at the operating point chosen on validation, and nothing before
    the evaluation touched the test split."""
    import torch

    from components.deploy.export import export_onnx, preprocessing_for
    from components.evaluation.evaluate import evaluate_served
    from components.evaluation.outputs import log_to_run
    from components.evaluation.served import served_probabilities, stamp_operating_point
    from medpipe.config import PipelineConfig

    result, settings = trained
    client = MlflowClient(settings.tracking_uri)
    assert not any(k.startswith("test_") for k in client.get_run(result.run_id).data.metrics)
    net, pre = load_model_dir(result.model_dir)
    assert pre.tta and pre.train_image_size == 28 and pre.class_names == ["malignant", "normal_or_benign"]
    cfg = PipelineConfig().with_overrides({"registry.positive_class": "malignant"})
    onnx_path = export_onnx(result.model_dir, tmp_path / "model.onnx", cfg.export)
    op = stamp_operating_point(onnx_path, prepared_breastmnist, cfg.registry, cfg.export)
    assert preprocessing_for(onnx_path).operating_point == op and op.positive_class == "malignant"

    test = load_split(prepared_breastmnist, "test")
    onnx_probs = served_probabilities(onnx_path, test.images[:32], cfg.export)
    x = torch.from_numpy(test.images[:32].transpose(0, 3, 1, 2).astype(np.float32))
    x = (x - torch.tensor(pre.mean) * 255) / (torch.tensor(pre.std) * 255)
    with torch.inference_mode():
        expected = (net.eval()(x).softmax(1) + net(torch.flip(x, dims=[3])).softmax(1)) / 2
    assert np.abs(onnx_probs - expected.numpy()).max() < 1e-4

    ev = evaluate_served(onnx_path, prepared_breastmnist, registry=cfg.registry, export=cfg.export)
    log_to_run(settings, result.run_id, ev)
    logged = client.get_run(result.run_id).data.metrics
    assert logged["test_auc"] == ev.metrics["auc"] and logged["test_sensitivity"] == ev.metrics["sensitivity"]
    assert ev.confusion().sum() == 156 and ev.metrics["threshold"] == op.threshold
    figures = {a.path for a in client.list_artifacts(result.run_id, "evaluation")}
    assert {"evaluation/roc.png", "evaluation/confusion_matrix.png", "evaluation/evaluation.json"} <= figures


def test_mlflow_run_has_metrics_plots_lineage(trained: tuple[TrainResult, Settings]) -> None:
    result, settings = trained
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["medpipe.run_kind"] == "final"
    assert "medpipe.params_hash" in run.data.tags and "medpipe.data_version" in run.data.tags
    assert run.data.tags["medpipe.imbalance"] == "weighted_loss"
    weights = np.array(eval(run.data.tags["medpipe.class_weights"]))  # noqa: S307 - our own JSON list
    assert weights[0] > 1 > weights[1]  # malignant is the minority class
    assert run.data.params["train.precision_effective"] == "32-true"
    history = client.get_metric_history(result.run_id, "val_auc")
    assert len(history) >= 3 and sorted({m.step for m in history}) == list(range(len(history)))
    arts = {a.path for a in client.list_artifacts(result.run_id)}
    arts |= {a.path for a in client.list_artifacts(result.run_id, "model_dir")}
    assert {"augmentation_preview.png", "model_dir/model.ckpt", "model_dir/preprocessing.json"} <= arts


def test_killed_run_resumes_from_last_checkpoint(prepared_breastmnist: Path, settings: Settings) -> None:
    """SIGKILL a training process after its first checkpoint; the rerun continues the same run key,
    the same MLflow run, from the saved epoch (not from scratch)."""
    epochs = 8  # killed after the first epoch's checkpoint, so several epochs are always left to resume
    overrides = ["search.enabled=false", f"train.epochs={epochs}", "train.early_stopping_patience=0"]
    script = textwrap.dedent(
        f"""
        import torch; torch.set_num_threads(1)
        from pathlib import Path
        from components.data.dataset import load_prepared
        from components.training.train import train_model
        from medpipe.settings import Settings
        from tests.helpers.configs import smoke_training
        train_model(smoke_training(*{overrides!r}), load_prepared(Path({str(prepared_breastmnist)!r})),
                    Settings(home=Path({str(settings.home)!r})), out_dir=Path({str(settings.home / "m")!r}))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, stderr=subprocess.DEVNULL)

    def checkpoint_loads() -> bool:  # the first last.ckpt, completely written (a partial file does not load)
        last = next(iter(settings.runs_dir.glob("final-*/checkpoints/last.ckpt")), None)
        return last is not None and "state_dict" in torch.load(last, map_location="cpu", weights_only=True)

    try:
        wait_until(checkpoint_loads, "the first complete last.ckpt", 300, procs=[proc],
                   ignore=(RuntimeError, EOFError, OSError, pickle.UnpicklingError))  # fmt: skip
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    (run_dir,) = settings.runs_dir.glob("final-*")
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and not (run_dir / "complete").exists()
    killed_run_id = (run_dir / "mlflow_run_id").read_text()
    saved_epoch = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["epoch"]

    result = train_model(
        smoke_training(*overrides), load_prepared(prepared_breastmnist), settings, out_dir=settings.home / "m"
    )
    assert result.run_id == killed_run_id
    run = MlflowClient(settings.tracking_uri).get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["medpipe.resumed"] == "true"
    assert run.data.tags["medpipe.resumed_from_epoch"] == str(saved_epoch)  # the killed run's checkpoint
    steps = [m.step for m in MlflowClient(settings.tracking_uri).get_metric_history(result.run_id, "train_loss")]
    assert sorted(set(steps)) == list(range(epochs))  # every epoch trained once overall, none restarted from 0
    assert (run_dir / "complete").is_file()
