"""A trained model as a folder: ``model.ckpt`` and ``preprocessing.json``. Training writes it; registry, export,
explain and monitoring read it.

``model.ckpt`` is a weights-only Lightning checkpoint of the training module
(:class:`~components.training.module.ClassifierModule`): ``state_dict`` (the network under ``net.``) and the
``hyper_parameters`` its ``save_hyperparameters`` recorded, plain types only, so it loads with
``weights_only=True`` and ``ClassifierModule.load_from_checkpoint`` rebuilds the model. ``hyper_parameters["model"]``
holds the :func:`create_model` arguments; a seed ensemble's is ``{"ensemble": [arguments per member]}``, its state
dict the :class:`~components.models.ensemble.EnsembleClassifier`'s.

Folders (and registered versions) written before the checkpoint carried the hyperparameters hold ``model.pt`` (the
state dict) + ``model_config.json`` (the arguments) instead: they are still read.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from components.models.ensemble import EnsembleClassifier
from components.models.registry import NET_PREFIX, Classifier, create_model, network_state
from medpipe.imaging.preprocessing import Preprocessing

CHECKPOINT = "model.ckpt"
WEIGHTS = "model.pt"  # legacy folders: the state dict ...
MODEL_CONFIG = "model_config.json"  # ... and the create_model() arguments


def save_model_dir(
    out_dir: Path,
    net: Classifier,
    factory_kwargs: dict[str, Any],
    preprocessing: Preprocessing,
    hparams: dict[str, Any] | None = None,
) -> Path:
    """Write ``net`` as a weights-only checkpoint whose hyperparameters rebuild it: ``hparams`` (the training
    module's ``hparams``) with ``model`` = ``factory_kwargs`` (:func:`create_model` arguments)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "state_dict": {f"{NET_PREFIX}{k}": v for k, v in net.state_dict().items()},
        "hyper_parameters": {**(hparams or {}), "model": factory_kwargs},
        "pytorch-lightning_version": version("lightning"),
    }
    torch.save(checkpoint, out_dir / CHECKPOINT)
    preprocessing.save(out_dir)
    return out_dir


def is_model_dir(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a model (a checkpoint, or a legacy state dict + arguments)."""
    model_dir = Path(model_dir)
    return (model_dir / CHECKPOINT).is_file() or (
        (model_dir / WEIGHTS).is_file() and (model_dir / MODEL_CONFIG).is_file()
    )


def read_model_dir(model_dir: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(create_model arguments, the network's state dict) of a model folder; loads with ``weights_only=True``."""
    model_dir = Path(model_dir)
    if (model_dir / CHECKPOINT).is_file():
        ckpt = torch.load(model_dir / CHECKPOINT, map_location="cpu", weights_only=True)
        return dict(ckpt["hyper_parameters"]["model"]), network_state(ckpt)
    if not is_model_dir(model_dir):
        raise FileNotFoundError(f"{model_dir} holds no {CHECKPOINT}: not a medpipe model folder")
    config = json.loads((model_dir / MODEL_CONFIG).read_text())
    return config, torch.load(model_dir / WEIGHTS, map_location="cpu", weights_only=True)


def load_model_dir(model_dir: Path) -> tuple[Classifier, Preprocessing]:
    """Rebuild the network (eval mode, CPU) and its preprocessing from a model folder."""
    config, state = read_model_dir(model_dir)
    net = build_model(config)
    net.load_state_dict(state)
    return net.eval(), Preprocessing.load(Path(model_dir))


ENSEMBLE_KEY = "ensemble"


def build_model(config: dict[str, Any]) -> Classifier:
    """The (untrained) network ``hyper_parameters["model"]`` describes: one classifier or a seed ensemble."""
    if ENSEMBLE_KEY in config:
        return EnsembleClassifier([create_model(**member) for member in config[ENSEMBLE_KEY]])
    return create_model(**config)


def save_ensemble_dir(out_dir: Path, member_dirs: list[Path]) -> Path:
    """One model folder holding the members in ``member_dirs`` as an :class:`EnsembleClassifier` (same classes and
    preprocessing required; the first member's preprocessing record is kept)."""
    members, configs, pres = [], [], []
    for d in member_dirs:
        net, pre = load_model_dir(Path(d))
        members.append(net)
        configs.append(read_model_dir(Path(d))[0])
        pres.append(pre)
    first = pres[0]
    for d, pre in zip(member_dirs[1:], pres[1:], strict=True):
        if (pre.class_names, pre.image_size, pre.channels, pre.train_image_size, pre.mean, pre.std, pre.tta) != (
            first.class_names, first.image_size, first.channels, first.train_image_size, first.mean, first.std,
            first.tta,
        ):  # fmt: skip
            raise ValueError(f"{d} does not share the first member's classes/preprocessing: cannot ensemble them")
    return save_model_dir(out_dir, EnsembleClassifier(members), {ENSEMBLE_KEY: configs}, first)
