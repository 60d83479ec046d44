"""Every network through one factory: ``create_model(name, num_classes=, in_channels=, ...)``.

A :class:`Classifier` is a backbone that maps images (N, C, H, W) to an embedding (N, D) and a
head (dropout + linear) that maps the embedding to logits (N, K). Export and drift monitoring use
the embedding, so every model exposes it the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medpipe.errors import MedpipeError

State = Mapping[str, torch.Tensor]  # a torchvision network's own state dict (ImageNet weights)
NET_PREFIX = "net."  # where a checkpoint of the training module (ClassifierModule.net) keeps the network
TORCHVISION_WEIGHTS = {  # model name -> torchvision weights enum (its DEFAULT entry is what "torchvision" loads)
    "resnet18": "ResNet18_Weights",
    "resnet50": "ResNet50_Weights",
    "efficientnet_b0": "EfficientNet_B0_Weights",
    "convnext_tiny": "ConvNeXt_Tiny_Weights",
}


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, embedding_dim: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.embedding_dim = embedding_dim
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding_dim, num_classes))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float images -> (N, D) penultimate-layer embedding."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float images -> (N, K) logits."""
        return self.head(self.embed(x))


def _small_cnn(in_channels: int, small_input: bool) -> tuple[nn.Module, int]:
    def block(c_in: int, c_out: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )

    backbone = nn.Sequential(
        block(in_channels, 32),
        block(32, 64),
        block(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 256),
        nn.ReLU(inplace=True),
    )
    return backbone, 256


def _adapt_conv(conv: nn.Conv2d, in_channels: int, small_input: bool) -> nn.Conv2d:
    """A stem conv for ``in_channels`` (and a 3x3 stride-1 kernel for small inputs), reusing weights."""
    if conv.in_channels == in_channels and not small_input:
        return conv
    kernel, stride, padding = (3, 1, 1) if small_input else (conv.kernel_size, conv.stride, conv.padding)
    new = nn.Conv2d(in_channels, conv.out_channels, kernel, stride, padding, bias=conv.bias is not None)
    with torch.no_grad():
        w = conv.weight
        if small_input and w.shape[-1] > 3:  # keep the centre of a pretrained kernel
            c = w.shape[-1] // 2
            w = w[..., c - 1 : c + 2, c - 1 : c + 2]
        if w.shape[-1] == new.weight.shape[-1]:
            if in_channels != w.shape[1]:  # grey <-> RGB: spread the summed filter over the new channels
                w = w.sum(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels
            new.weight.copy_(w)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _pretrained(net: nn.Module, state: State | None) -> nn.Module:
    """Load ImageNet weights into the torchvision network as published (before its stem or head changes)."""
    if state is not None:
        net.load_state_dict(state)
    return net


def _resnet(builder: Callable[..., nn.Module]) -> Callable[[int, bool, State | None], tuple[nn.Module, int]]:
    def build(in_channels: int, small_input: bool, state: State | None) -> tuple[nn.Module, int]:
        net = _pretrained(builder(weights=None), state)
        net.conv1 = _adapt_conv(net.conv1, in_channels, small_input)
        if small_input:
            net.maxpool = nn.Identity()
        dim = net.fc.in_features
        net.fc = nn.Identity()
        return net, dim

    return build


def _efficientnet_b0(in_channels: int, small_input: bool, state: State | None) -> tuple[nn.Module, int]:
    from torchvision.models import efficientnet_b0

    net = _pretrained(efficientnet_b0(weights=None), state)
    net.features[0][0] = _adapt_conv(net.features[0][0], in_channels, small_input)
    dim = net.classifier[-1].in_features
    net.classifier = nn.Identity()
    return net, dim


def _convnext_tiny(in_channels: int, small_input: bool, state: State | None) -> tuple[nn.Module, int]:
    from torchvision.models import convnext_tiny

    net = _pretrained(convnext_tiny(weights=None), state)
    net.features[0][0] = _adapt_conv(net.features[0][0], in_channels, small_input)
    dim = net.classifier[-1].in_features
    net.classifier[-1] = nn.Identity()
    return net, dim


def _builders() -> dict[str, Callable[[int, bool, State | None], tuple[nn.Module, int]]]:
    from torchvision.models import resnet18, resnet50

    return {
        "cnn": lambda c, s, p: _small_cnn(c, s),
        "resnet18": _resnet(resnet18),
        "resnet50": _resnet(resnet50),
        "efficientnet_b0": _efficientnet_b0,
        "convnext_tiny": _convnext_tiny,
    }


def available_models() -> tuple[str, ...]:
    return tuple(_builders())


def create_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int = 1,
    small_input: bool = False,
    dropout: float = 0.0,
    weights: str | Path | State | None = None,
) -> Classifier:
    """Build a classifier by name.

    ``weights``: None (random init), ``"torchvision"`` (published ImageNet weights, read offline from the
    torch hub cache: :func:`torchvision_state_dict`), a torchvision network's own state dict (the same,
    from anywhere), or a local state-dict file of a :class:`Classifier` (loaded with ``weights_only=True``;
    a head of another size is left freshly initialised). ImageNet weights load before the stem is adapted
    to ``in_channels``/``small_input``, so a grey stem gets the summed RGB filters.
    """
    builders = _builders()
    if name not in builders:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(builders)}")
    state = torchvision_state_dict(name) if isinstance(weights, str) and weights == "torchvision" else None
    if isinstance(weights, Mapping):
        if name not in TORCHVISION_WEIGHTS:
            raise ValueError(f"model {name!r} has no torchvision counterpart to load ImageNet weights into")
        state = weights
    backbone, dim = builders[name](in_channels, small_input, state)
    model = Classifier(backbone, dim, num_classes, dropout)
    if weights is not None and state is None:
        load_weights(model, Path(weights))
    return model


def torchvision_weights(name: str) -> Any:
    """The torchvision weights entry ``model.init_weights: torchvision`` means for ``name`` (its DEFAULT)."""
    import torchvision.models as tvm

    if name not in TORCHVISION_WEIGHTS:
        raise MedpipeError(
            f"model {name!r} has no torchvision ImageNet weights (those exist for {', '.join(TORCHVISION_WEIGHTS)}); "
            "set model.init_weights to a state-dict file or a models:/name@alias URI"
        )
    return getattr(tvm, TORCHVISION_WEIGHTS[name]).DEFAULT


def hub_checkpoint(name: str) -> Path:
    """Where torchvision keeps ``name``'s ImageNet weights: ``$TORCH_HOME/hub/checkpoints/<file of the URL>``."""
    from urllib.parse import urlparse

    url = torchvision_weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def torchvision_state_dict(name: str) -> dict[str, torch.Tensor]:
    """``name``'s ImageNet weights from the torch hub cache, offline (nothing is downloaded; the file is read
    with ``weights_only=True``). Absent, the error names the path and how to put the file there."""
    path = hub_checkpoint(name)
    if not path.is_file():
        url = torchvision_weights(name).url
        raise MedpipeError(
            f"model.init_weights=torchvision: {name}'s ImageNet weights are not at {path} (nothing is downloaded). "
            f"Copy {url} there (or set TORCH_HOME to the folder whose hub/checkpoints holds it), or set "
            "model.init_weights to a local state-dict file of the torchvision network"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a truncated file or a pickled object: say which file
        raise MedpipeError(f"{path} is not a readable torchvision state dict ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict):
        raise MedpipeError(f"{path} holds a {type(state).__name__}, not a state dict")
    return state


def network_state(state: Any) -> Any:
    """The network's tensors of a Lightning checkpoint of the training module (its ``state_dict`` under
    ``net.``); anything else (a plain state dict) as it is."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        return {k.removeprefix(NET_PREFIX): v for k, v in state["state_dict"].items() if k.startswith(NET_PREFIX)}
    return state


def read_state(path: Path) -> Any:
    """The network's tensors in the file ``path`` (a plain state dict, or a checkpoint of the training module),
    loaded with ``weights_only=True``: nothing is unpickled."""
    return network_state(torch.load(path, map_location="cpu", weights_only=True))


def load_matching(model: Classifier, state: State, source: str) -> list[str]:
    """Copy every tensor whose name and shape match (a head of another size stays fresh); returns skipped keys."""
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fits:
        raise MedpipeError(
            f"weights {source} hold no tensor that fits model {type(model.backbone).__name__}: "
            "use weights of the same architecture (model.name)"
        )
    model.load_state_dict(fits, strict=False)
    return sorted(set(own) - set(fits))


def load_weights(model: Classifier, path: Path) -> list[str]:
    """Load a Classifier state dict or model checkpoint file (``weights_only=True``) into ``model``, skipping
    tensors whose shape differs (e.g. a new head). Returns the skipped keys."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    return load_matching(model, read_state(path), str(path))
