"""A trained model as a folder: ``model.pt`` (state dict), ``model_config.json`` (factory kwargs),
``preprocessing.json``. Training writes it; registry, export and monitoring read it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

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
    net = create_model(**kwargs)
    net.load_state_dict(torch.load(model_dir / WEIGHTS, map_location="cpu", weights_only=True))
    return net.eval(), Preprocessing.load(model_dir)
