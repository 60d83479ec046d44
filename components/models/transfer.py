"""Transfer learning: build a :class:`Classifier` from the model config, initialised from a local
state-dict file, torchvision's published weights, or a registered MLflow model (``models:/name@alias``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from components.models.registry import TORCHVISION_WEIGHTS, Classifier, create_model, load_matching, read_state
from medpipe.config import ModelConfig
from medpipe.errors import MedpipeError, RegistryError
from medpipe.settings import Settings


def factory_kwargs(cfg: ModelConfig, *, num_classes: int, in_channels: int) -> dict[str, Any]:
    """:func:`create_model` arguments that rebuild the architecture (no init weights: the model folder has them)."""
    return {
        "name": cfg.name,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "small_input": cfg.small_input,
        "dropout": cfg.dropout,
    }


def registered_state_dict(uri: str, settings: Settings) -> dict[str, torch.Tensor]:
    """State dict of a registered model (``models:/name@alias`` or ``models:/name/3``), read from the
    ``model.ckpt`` it carries (``model.pt`` for versions registered before) with ``weights_only=True``: nothing a
    registry holds is unpickled."""
    import tempfile

    from components.models.artifacts import CHECKPOINT, WEIGHTS
    from components.tracking import use_tracking_store

    use_tracking_store(settings)
    with tempfile.TemporaryDirectory(prefix="medpipe-init-") as tmp:
        try:
            local = _download_first(uri, (CHECKPOINT, WEIGHTS), tmp)
        except Exception as err:  # MlflowException, missing alias or file, unreachable server, ...
            raise RegistryError(
                f"cannot load init weights {uri} from the registry at {settings.registry_uri}: {err}. "
                f"Check the model name and alias (`medpipe registry list`; the version must carry {CHECKPOINT}, as "
                "every version medpipe registers does) or set model.init_weights to a file."
            ) from err
        try:
            state = read_state(local)  # model.ckpt: the network's part
        except Exception as err:  # noqa: BLE001 - an UnpicklingError is exactly what must not run
            raise RegistryError(
                f"{uri}: {local.name} is not a plain state dict ({type(err).__name__}); refused"
            ) from err
    if not isinstance(state, dict):
        raise RegistryError(f"{uri}: {local.name} holds a {type(state).__name__}, not a state dict")
    return state


def _download_first(uri: str, names: tuple[str, ...], dst: str) -> Path:
    """The first of ``names`` that the registered version ``uri`` carries, downloaded into ``dst``."""
    import mlflow

    for name in names[:-1]:
        try:
            return Path(mlflow.artifacts.download_artifacts(f"{uri.rstrip('/')}/{name}", dst_path=dst))
        except Exception:  # noqa: BLE001, S112 - absent in this version: try the next name
            continue
    return Path(mlflow.artifacts.download_artifacts(f"{uri.rstrip('/')}/{names[-1]}", dst_path=dst))


def build_model(
    cfg: ModelConfig, *, num_classes: int, in_channels: int, settings: Settings
) -> tuple[Classifier, dict[str, Any], list[str]]:
    """The network for training: (classifier, factory kwargs for the model folder, skipped init keys)."""
    kwargs = factory_kwargs(cfg, num_classes=num_classes, in_channels=in_channels)
    init = cfg.init_weights
    if init is None:
        return create_model(**kwargs), kwargs, []
    if init == "torchvision":
        return create_model(**kwargs, weights="torchvision"), kwargs, []
    model = create_model(**kwargs)
    if init.startswith("models:/"):
        return model, kwargs, load_matching(model, registered_state_dict(init, settings), init)
    path = Path(init).expanduser()
    if not path.is_file():
        raise MedpipeError(
            f"model.init_weights={init!r} is neither 'torchvision', a models:/name@alias URI, nor an existing file"
        )
    state = read_state(path)  # a Lightning checkpoint of our module: the network's part
    torchvision_own = isinstance(state, dict) and not any(k.startswith("backbone.") for k in state)
    if torchvision_own and cfg.name in TORCHVISION_WEIGHTS:  # e.g. ImageNet weights saved on another machine
        try:
            return create_model(**kwargs, weights=state), kwargs, []
        except RuntimeError as err:
            raise MedpipeError(
                f"model.init_weights={init!r} is not a state dict of torchvision's {cfg.name} ({err})"
            ) from None
    return model, kwargs, load_matching(model, state, str(path))
