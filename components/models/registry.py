"""Every network through one factory: ``create_model(name, num_classes=, in_channels=, ...)``.

A :class:`Classifier` is a backbone that maps images (N, C, H, W) to an embedding (N, D) and a
head (dropout + linear) that maps the embedding to logits (N, K). Export and drift monitoring use
the embedding, so every model exposes it the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn


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


def _resnet(builder: Callable[..., nn.Module]) -> Callable[[int, bool, bool], tuple[nn.Module, int]]:
    def build(in_channels: int, small_input: bool, pretrained: bool) -> tuple[nn.Module, int]:
        net = builder(weights="DEFAULT" if pretrained else None)
        net.conv1 = _adapt_conv(net.conv1, in_channels, small_input)
        if small_input:
            net.maxpool = nn.Identity()
        dim = net.fc.in_features
        net.fc = nn.Identity()
        return net, dim

    return build


def _efficientnet_b0(in_channels: int, small_input: bool, pretrained: bool) -> tuple[nn.Module, int]:
    from torchvision.models import efficientnet_b0

    net = efficientnet_b0(weights="DEFAULT" if pretrained else None)
    net.features[0][0] = _adapt_conv(net.features[0][0], in_channels, small_input)
    dim = net.classifier[-1].in_features
    net.classifier = nn.Identity()
    return net, dim


def _convnext_tiny(in_channels: int, small_input: bool, pretrained: bool) -> tuple[nn.Module, int]:
    from torchvision.models import convnext_tiny

    net = convnext_tiny(weights="DEFAULT" if pretrained else None)
    net.features[0][0] = _adapt_conv(net.features[0][0], in_channels, small_input)
    dim = net.classifier[-1].in_features
    net.classifier[-1] = nn.Identity()
    return net, dim


def _builders() -> dict[str, Callable[[int, bool, bool], tuple[nn.Module, int]]]:
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
    weights: str | Path | None = None,
) -> Classifier:
    """Build a classifier by name.

    ``weights``: None (random init), ``"torchvision"`` (published ImageNet weights; needs the
    network), or a local state-dict file of a :class:`Classifier` (loaded with
    ``weights_only=True``; a head of another size is left freshly initialised).
    """
    builders = _builders()
    if name not in builders:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(builders)}")
    pretrained = weights == "torchvision"
    if pretrained and name == "cnn":
        raise ValueError("model 'cnn' has no torchvision weights; use a state-dict file or a registered model")
    backbone, dim = builders[name](in_channels, small_input, pretrained)
    model = Classifier(backbone, dim, num_classes, dropout)
    if weights is not None and not pretrained:
        load_weights(model, Path(weights))
    return model


def load_weights(model: Classifier, path: Path) -> list[str]:
    """Load a Classifier state dict, skipping tensors whose shape differs (e.g. a new head). Returns skipped keys."""
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:  # a Lightning checkpoint
        state = {k.removeprefix("net."): v for k, v in state["state_dict"].items() if k.startswith("net.")}
    own = model.state_dict()
    compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(own) - set(compatible))
    if not compatible:
        raise ValueError(f"weights file {path} holds no tensor that fits this model")
    model.load_state_dict(compatible, strict=False)
    return skipped
