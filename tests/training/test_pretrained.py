"""ImageNet weights offline: ``model.init_weights: torchvision`` reads the torch hub cache (nothing downloads),
fails naming the expected file when it is absent, and a torchvision state-dict file given as a path loads too."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
from torchvision.models import ResNet18_Weights, resnet18

from components.models.transfer import build_model
from medpipe.errors import MedpipeError
from tests.helpers.configs import smoke_cfg


def test_torchvision_weights_load_from_the_hub_cache_offline(tmp_path: Path, monkeypatch, settings) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = tmp_path / "torch" / "hub" / "checkpoints" / Path(urlparse(ResNet18_Weights.IMAGENET1K_V1.url).path).name
    cfg = smoke_cfg(
        "search.enabled=false", "model.name=resnet18", "model.small_input=false", "model.init_weights=torchvision"
    )
    with pytest.raises(MedpipeError, match=re.escape(str(cached))):
        build_model(cfg.model, num_classes=2, in_channels=3, settings=settings)

    torch.manual_seed(7)
    src = resnet18(weights=None)  # stands in for the ImageNet file: fresh weights under the exact name
    cached.parent.mkdir(parents=True)
    torch.save(src.state_dict(), cached)
    net, kwargs, skipped = build_model(cfg.model, num_classes=2, in_channels=3, settings=settings)
    own = net.backbone.state_dict()
    for key, value in src.state_dict().items():
        if not key.startswith("fc."):  # the ImageNet head is replaced by ours
            assert torch.equal(own[key], value), key
    assert skipped == [] and "weights" not in kwargs

    grey, _, _ = build_model(cfg.model, num_classes=2, in_channels=1, settings=settings)
    assert torch.allclose(grey.backbone.conv1.weight, src.conv1.weight.sum(dim=1, keepdim=True))
    assert torch.equal(grey.backbone.layer4[1].conv2.weight, src.layer4[1].conv2.weight)

    as_file = smoke_cfg(
        "search.enabled=false", "model.name=resnet18", "model.small_input=false", f"model.init_weights={cached}"
    )
    from_file, _, _ = build_model(as_file.model, num_classes=2, in_channels=3, settings=settings)
    assert torch.equal(from_file.backbone.layer1[0].conv1.weight, src.layer1[0].conv1.weight)


def test_cnn_has_no_torchvision_weights(settings) -> None:
    cfg = smoke_cfg("search.enabled=false", "model.name=cnn", "model.init_weights=torchvision")
    with pytest.raises(MedpipeError, match="no torchvision ImageNet weights"):
        build_model(cfg.model, num_classes=2, in_channels=1, settings=settings)
