"""A trained model as a folder: ``model.pt`` (state dict), ``model_config.json`` (factory kwargs),
``preprocessing.json``. Training writes it; registry, export and monitoring read it.

A seed ensemble is the same folder: ``model_config.json`` holds ``{"ensemble": [kwargs per member]}`` and
``model.pt`` the :class:`~components.models.ensemble.EnsembleClassifier`'s state dict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from components.models.ensemble import EnsembleClassifier
from components.models.registry import Classifier, create_model
from medpipe.imaging.preprocessing import Preprocessing

WEIGHTS = "model.pt"
MODEL_CONFIG = "model_config.json"


def save_model_dir(
    out_dir: Path, net: Classifier, factory_kwargs: dict[str, Any], preprocessing: Preprocessing
) -> Path:
    """Write ``net`` with what is needed to rebuild it; ``factory_kwargs`` are :func:`create_model` arguments."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out_dir / WEIGHTS)
    (out_dir / MODEL_CONFIG).write_text(json.dumps(factory_kwargs, indent=2, sort_keys=True) + "\n")
    preprocessing.save(out_dir)
    return out_dir


def load_model_dir(model_dir: Path) -> tuple[Classifier, Preprocessing]:
    """Rebuild the network (eval mode, CPU) and its preprocessing from a model folder."""
    model_dir = Path(model_dir)
    if not (model_dir / WEIGHTS).is_file():
        raise FileNotFoundError(f"{model_dir} holds no {WEIGHTS}: not a medpipe model folder")
    kwargs = json.loads((model_dir / MODEL_CONFIG).read_text())
    net = build_model(kwargs)
    net.load_state_dict(torch.load(model_dir / WEIGHTS, map_location="cpu", weights_only=True))
    return net.eval(), Preprocessing.load(model_dir)


ENSEMBLE_KEY = "ensemble"


def build_model(config: dict[str, Any]) -> Classifier:
    """The (untrained) network a ``model_config.json`` describes: one classifier or a seed ensemble."""
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
        configs.append(json.loads((Path(d) / MODEL_CONFIG).read_text()))
        pres.append(pre)
    first = pres[0]
    for d, pre in zip(member_dirs[1:], pres[1:], strict=True):
        if (pre.class_names, pre.image_size, pre.channels, pre.train_image_size, pre.mean, pre.std, pre.tta) != (
            first.class_names, first.image_size, first.channels, first.train_image_size, first.mean, first.std,
            first.tta,
        ):  # fmt: skip
            raise ValueError(f"{d} does not share the first member's classes/preprocessing: cannot ensemble them")
    return save_model_dir(out_dir, EnsembleClassifier(members), {ENSEMBLE_KEY: configs}, first)
