"""Test models made by the pipeline's own code: trained by ``components.training.train.train_model`` (the
Lightning engine the train stage runs), exported and gated by ``components.deploy.stage.deploy_model``, and
registered by ``components.registry.register.register_model``. No second training loop.

A :class:`Recipe` is params.yaml's smoke profile (the small CNN) plus overrides, trained on BreastMNIST with a
share of its *training* labels flipped (validation and test stay clean): the "clearly worse" models of the gate
tests come from the same engine as the good ones, only from worse data or fewer epochs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MLFLOW_URI_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME")


@dataclass(frozen=True)
class Recipe:
    """How to train (hashable: the session fixtures build one model per recipe)."""

    overrides: tuple[str, ...] = ()
    label_noise: float = 0.0  # share of the training labels flipped (seeded)

    def config(self):  # noqa: ANN201 - PipelineConfig (imported lazily: helpers import nothing heavy)
        from medpipe.config import load_config

        base = ("train.num_workers=0", "search.enabled=false", "train.cpu_threads=1")
        return load_config(REPO_ROOT / "params.yaml", profile="smoke", overrides=[*base, *self.overrides])


# measured on BreastMNIST test (ONNX export, 2 CPU cores): AUC / ECE
GOOD = Recipe(("train.epochs=4",))  # ~0.82 / 0.06
BETTER = Recipe(("train.epochs=4", "train.seed=7"))  # ~0.83 / 0.04: about as good as GOOD (a tie for the gate)
WEAK = Recipe(("train.epochs=1", "train.imbalance=none"))  # ~0.68 / 0.06: a first champion GOOD clearly beats
BAD = Recipe(("train.epochs=1",), label_noise=1.0)  # the classes swapped (a label-mapping bug): ~0.32, fails floors


@contextmanager
def mlflow_uri_env_kept(values: dict[str, str | None] | None = None) -> Iterator[None]:
    """Afterwards, MLflow's URI/experiment variables are ``values`` (default: what they were on entry) and its
    module globals behind ``mlflow.set_tracking_uri``/``set_registry_uri``/``set_experiment`` are cleared: those
    calls write both, and later code prefers them to the store a test passes explicitly."""
    saved = dict(values) if values is not None else {var: os.environ.get(var) for var in MLFLOW_URI_VARS}
    try:
        yield
    finally:
        if "mlflow" in sys.modules:
            import mlflow.tracking._model_registry.utils as registry_utils
            import mlflow.tracking._tracking_service.utils as tracking_utils
            import mlflow.tracking.fluent as fluent

            fluent._active_experiment_id = None
            registry_utils._registry_uri = None
            tracking_utils._tracking_uri = None
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


@dataclass(frozen=True)
class Artefact:
    """A trained model folder and its exported, parity-checked serving folder (model.onnx + preprocessing.json)."""

    model_dir: Path
    served_dir: Path

    @property
    def onnx_path(self) -> Path:
        return self.served_dir / "model.onnx"


def noisy_copy(prepared: Path, out_dir: Path, share: float, seed: int = 0) -> Path:
    """A copy of the prepared folder ``prepared`` whose train split has ``share`` of its labels flipped."""
    import shutil

    import numpy as np

    from components.data.dataset import Split, load_split, write_split

    shutil.copytree(prepared, out_dir, dirs_exist_ok=True)
    train = load_split(prepared, "train")
    labels = train.labels.copy()
    rng = np.random.default_rng(seed)
    flip = rng.random(len(labels)) < share
    classes = int(labels.max()) + 1
    labels[flip] = (labels[flip] + rng.integers(1, classes, int(flip.sum()))) % classes
    write_split(out_dir, "train", Split(train.images, labels))
    return out_dir


def train(recipe: Recipe, prepared: Path, settings, out_dir: Path) -> Path:  # noqa: ANN001 - medpipe Settings
    """Train ``recipe`` with the train stage's function; returns the model folder it wrote."""
    import torch

    from components.data.dataset import load_prepared
    from components.training.train import train_model

    data = noisy_copy(prepared, out_dir / "data", recipe.label_noise) if recipe.label_noise else prepared
    threads = torch.get_num_threads()  # the engine sets train.cpu_threads for the process: give it back
    try:
        return train_model(
            recipe.config().for_training(), load_prepared(data), settings, out_dir=out_dir / "model"
        ).model_dir
    finally:
        torch.set_num_threads(threads)


def export(model_dir: Path, out_dir: Path) -> Path:
    """Export ``model_dir`` as the deploy stage does (``out_dir/model.onnx`` + ``preprocessing.json``; its parity
    gate has tests of its own in tests/deploy); returns ``out_dir``."""
    from components.deploy.export import export_onnx
    from medpipe.config import ExportConfig

    export_onnx(model_dir, Path(out_dir) / "model.onnx", ExportConfig())
    return Path(out_dir)


def register(artefact: Artefact, name: str, settings, tags: dict[str, str] | None = None) -> str:  # noqa: ANN001
    """Register ``artefact`` under ``name`` in ``settings``' store as the register stage does; returns the version."""
    from mlflow import MlflowClient

    from components.registry.register import register_model
    from medpipe.config import PipelineConfig

    cfg = PipelineConfig().with_overrides({"registry.model_name": name, "registry.retries": 0})
    version = register_model(
        artefact.model_dir,
        artefact.onnx_path,
        settings,
        registry=cfg.registry,
        lineage=cfg.lineage(),
        run_id=None,
        data_version=None,
        metrics={"auc": 0.81},
    ).version
    client = MlflowClient(settings.tracking_uri)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, value)
    return version
