"""Every registered model: forward pass on a small input; transfer learning from a file and the registry;
bad params fail at load."""

from __future__ import annotations

import mlflow
import pytest
import torch

from components.models.registry import available_models, create_model
from components.models.transfer import build_model
from medpipe.config import MODEL_NAMES, ConfigError
from medpipe.errors import RegistryError
from tests.helpers.configs import smoke_cfg, smoke_training


def test_the_config_accepts_exactly_the_models_the_factory_builds() -> None:
    assert available_models() == MODEL_NAMES  # model.name is validated against the one list


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


def test_transfer_from_registered_model_alias(settings, tmp_path, capfd) -> None:
    """The registered version's model.pt is read with weights_only=True; nothing registered is unpickled."""
    from components.models.artifacts import save_model_dir
    from components.models.transfer import factory_kwargs
    from components.registry.register import register_model
    from tests.helpers.data import preprocessing

    cfg = smoke_cfg("search.enabled=false", "registry.model_name=pretrained-cnn")
    src = create_model(**factory_kwargs(cfg.model, num_classes=2, in_channels=1)).eval()
    pre = preprocessing()
    model_dir = save_model_dir(tmp_path / "model", src, factory_kwargs(cfg.model, num_classes=2, in_channels=1), pre)
    reg = register_model(
        model_dir, None, settings, registry=cfg.registry, lineage=cfg.lineage(), run_id=None, data_version="v1",
        metrics={"auc": 0.8},
    )  # fmt: skip
    printed = capfd.readouterr()
    assert "registered model" not in printed.err and "Created version" not in printed.err  # MLflow's own prints
    mlflow.MlflowClient(settings.tracking_uri).set_registered_model_alias("pretrained-cnn", "champion", reg.version)

    init = smoke_cfg("search.enabled=false", "model.init_weights=models:/pretrained-cnn@champion")
    net, _, skipped = build_model(init.model, num_classes=2, in_channels=1, settings=settings)
    assert skipped == []
    for (k, a), b in zip(net.state_dict().items(), src.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    bad = smoke_cfg("search.enabled=false", "model.init_weights=models:/pretrained-cnn@nope")
    with pytest.raises(RegistryError, match="pretrained-cnn@nope"):
        build_model(bad.model, num_classes=2, in_channels=1, settings=settings)


def test_init_weights_refuse_a_registered_pickle(settings, tmp_path) -> None:
    """A version whose model.pt is a pickled object (code on load) is refused, not run."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    mlflow.set_experiment("hostile")
    evil = tmp_path / "model.pt"
    torch.save({"net": torch.nn.Linear(2, 2)}, evil)  # a module object: unpickling it would import and run code
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(evil), artifact_path="m")
    client = mlflow.MlflowClient(settings.tracking_uri)
    client.create_registered_model("hostile-model")
    source = f"{run.info.artifact_uri}/m"
    version = client.create_model_version("hostile-model", source, run_id=run.info.run_id).version
    cfg = smoke_cfg("search.enabled=false", f"model.init_weights=models:/hostile-model/{version}")
    with pytest.raises(RegistryError, match="not a plain state dict"):
        build_model(cfg.model, num_classes=2, in_channels=1, settings=settings)


def test_staged_unfreezing_keeps_backbone_for_first_epochs(prepared_breastmnist, settings) -> None:
    from components.data.dataset import load_prepared
    from components.training.engine import fit, load_splits

    prepared = load_prepared(prepared_breastmnist)
    cfg = smoke_training("search.enabled=false", "train.epochs=1", "model.freeze_backbone_epochs=1")
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


def test_model_folder_checkpoint_rebuilds_the_network_and_legacy_folders_still_load(tmp_path) -> None:
    """model.ckpt holds the module's hyperparameters (plain types): load_from_checkpoint(weights_only=True) rebuilds
    the network; a folder written before (model.pt + model_config.json) still loads."""
    import json
    from dataclasses import asdict

    from components.models.artifacts import load_model_dir, save_model_dir
    from components.training.module import ClassifierModule, OptimSettings
    from tests.helpers.data import preprocessing

    kwargs = {"name": "cnn", "num_classes": 2, "in_channels": 1, "small_input": True, "dropout": 0.2}
    optim = asdict(OptimSettings(lr=0.01, weight_decay=0.0, epochs=3))
    module = ClassifierModule(kwargs, 2, optim, [0.7, 1.3])
    pre = preprocessing()
    folder = save_model_dir(tmp_path / "model", module.net, kwargs, pre, dict(module.hparams))
    assert sorted(p.name for p in folder.iterdir()) == ["model.ckpt", "preprocessing.json"]
    loaded = ClassifierModule.load_from_checkpoint(folder / "model.ckpt", map_location="cpu", weights_only=True)
    assert (loaded.hparams["model"], loaded.optim.lr, loaded.hparams["class_weights"]) == (kwargs, 0.01, [0.7, 1.3])
    net, _ = load_model_dir(folder)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        expected = module.net.eval()(x)
        assert torch.equal(loaded.net.eval()(x), expected) and torch.equal(net(x), expected)

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    torch.save(module.net.state_dict(), legacy / "model.pt")
    (legacy / "model_config.json").write_text(json.dumps(kwargs))
    pre.save(legacy)
    with torch.no_grad():
        assert torch.equal(load_model_dir(legacy)[0](x), expected)
