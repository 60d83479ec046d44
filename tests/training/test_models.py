"""Every registered model: forward pass on a small input; transfer learning from a file and the registry;
bad params fail at load."""

from __future__ import annotations

import mlflow
import pytest
import torch

from components.errors import RegistryError
from components.models.registry import available_models, create_model
from components.models.transfer import build_model
from medpipe.config import ConfigError
from tests.training.conftest import smoke_cfg


@pytest.mark.parametrize("name", available_models())
def test_every_model_forward_small_input(name: str) -> None:
    net = create_model(name, num_classes=3, in_channels=1, small_input=True, dropout=0.2).eval()
    with torch.no_grad():
        x = torch.rand(2, 1, 32, 32)
        logits, emb = net(x), net.embed(x)
    assert logits.shape == (2, 3) and emb.shape == (2, net.embedding_dim)


def test_transfer_from_state_dict_file(tmp_path, settings) -> None:
    src = create_model("cnn", num_classes=5, in_channels=1)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    cfg = smoke_cfg("search.enabled=false", f"model.init_weights={tmp_path / 'w.pt'}")
    net, kwargs, skipped = build_model(cfg.model, num_classes=2, in_channels=1, settings=settings)
    assert skipped == ["head.1.bias", "head.1.weight"]  # another number of classes: fresh head
    assert torch.equal(net.backbone[0][0].weight, src.backbone[0][0].weight)
    assert "weights" not in kwargs


def test_transfer_from_registered_model_alias(settings) -> None:
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    mlflow.set_experiment("pretraining")  # not the process-wide active experiment id of an earlier store
    src = create_model("cnn", num_classes=2, in_channels=1, small_input=True).eval()
    with mlflow.start_run():  # MLflow 3.17 defaults to the pt2 (torch.export) format: it needs an input example
        example = torch.rand(2, 1, 28, 28).numpy()
        info = mlflow.pytorch.log_model(
            src, name="model", registered_model_name="pretrained-cnn", input_example=example
        )
    mlflow.MlflowClient().set_registered_model_alias("pretrained-cnn", "champion", info.registered_model_version)
    cfg = smoke_cfg("search.enabled=false", "model.init_weights=models:/pretrained-cnn@champion")
    net, _, skipped = build_model(cfg.model, num_classes=2, in_channels=1, settings=settings)
    assert skipped == []
    for (k, a), b in zip(net.state_dict().items(), src.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    bad = smoke_cfg("search.enabled=false", "model.init_weights=models:/pretrained-cnn@nope")
    with pytest.raises(RegistryError, match="pretrained-cnn@nope"):
        build_model(bad.model, num_classes=2, in_channels=1, settings=settings)


def test_staged_unfreezing_keeps_backbone_for_first_epochs(prepared_breastmnist, settings) -> None:
    from components.data.dataset import load_prepared
    from components.training.engine import fit, load_splits

    prepared = load_prepared(prepared_breastmnist)
    cfg = smoke_cfg("search.enabled=false", "train.epochs=1", "model.freeze_backbone_epochs=1")
    out = fit(cfg, prepared, settings, load_splits(prepared))
    torch.manual_seed(cfg.train.seed)  # fit seeds the same way before it builds the model: same init
    fresh = build_model(cfg.model, num_classes=2, in_channels=1, settings=settings)[0]
    trained = out.module.net.state_dict()
    changed = [k for k, v in fresh.state_dict().items() if k.startswith("backbone.") and not torch.equal(v, trained[k])]
    assert changed == []  # weights and BatchNorm statistics untouched while frozen
    assert not torch.equal(fresh.head[1].weight, trained["head.1.weight"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.name=vgg99", "model.name"),
        ("train.lr=-0.1", "train.lr"),
        ("search.space={}", "search.space is empty"),
    ],
)
def test_bad_params_fail_at_load(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        smoke_cfg("search.enabled=true", override)
