"""Registration, the promotion gate, aliases and the audit log on a real MLflow sqlite store.

One store per module, one story: a weak first model (v1, champion), the identical model again (v2, kept champion:
no significant gain), a deliberately bad one (v3, rejected), a clearly better one under a 0.99 sensitivity floor it
fails (v4, rejected), the same model under the default floors (v5, promoted), then a rollback; the tests below read
that story. The models come from the real train and export stages (tests/helpers/artefacts.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.registry.gate import GateDecision
from components.registry.register import RegisteredVersion
from medpipe.config import PipelineConfig
from medpipe.settings import Settings
from tests.helpers.ports import free_port

# every test here reads models the train stage trains for the session (weak, good, bad: three trainings)
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class FakeParity:
    """The shape of components.deploy.parity.ParityReport that registration reads."""

    passed: bool

    def as_tags(self) -> dict[str, str]:
        return {"parity.passed": str(self.passed).lower(), "parity.max_abs_diff": "1e-06"}


@dataclass
class Story:
    settings: Settings
    cfg: PipelineConfig
    versions: dict[str, RegisteredVersion]
    decisions: dict[str, GateDecision]
    rollback_event: dict
    run_ids: dict[str, str]


@pytest.fixture(scope="module")
def story(trained, prepared_breastmnist: Path, tmp_path_factory: pytest.TempPathFactory, empty_mlflow_db) -> Story:
    import mlflow

    from components.registry.aliases import rollback
    from components.registry.gate import evaluate_and_promote
    from components.registry.register import register_model
    from components.tracking import experiment_name, flow_run_scope, lineage_tags, setup_mlflow

    home = tmp_path_factory.mktemp("store")
    empty_mlflow_db(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        settings = Settings(home=home)
        assert settings.tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
        cfg = PipelineConfig().with_overrides(
            {
                "registry.model_name": "test-classifier",
                "registry.positive_class": "malignant",
                "registry.bootstrap_samples": 500,
                "registry.min_primary": 0.6,
                "registry.retries": 1,
                "registry.retry_backoff_s": 0.1,
            }
        )
        setup_mlflow(settings, experiment_name(cfg.project.name))
        with flow_run_scope("flow-run-1234"):  # as a flow's run_stage does
            versions, decisions, run_ids = {}, {}, {}
            story = (("weak", "weak", {}), ("rerun", "weak", {}), ("bad", "bad", {}),
                     ("floor", "good", {"registry.min_sensitivity": 0.99}), ("good", "good", {}))  # fmt: skip
            for kind, model, overrides in story:
                with mlflow.start_run(run_name=f"train-{kind}") as run:
                    mlflow.set_tags(lineage_tags(cfg.lineage(), "data-md5-abc", settings))
                    mlflow.log_params({"train.lr": 0.002, "kind": kind})
                run_ids[kind] = run.info.run_id
                versions[kind] = register_model(
                    trained[model].model_dir,
                    trained[model].onnx_path,
                    settings,
                    registry=cfg.registry,
                    lineage=cfg.lineage(),
                    run_id=run.info.run_id,
                    data_version="data-md5-abc",
                    metrics={"auc": 0.5},
                    parity=FakeParity(passed=True) if kind == "good" else None,
                )
                gate_cfg = cfg.with_overrides(overrides) if overrides else cfg
                decisions[kind] = evaluate_and_promote(
                    versions[kind],
                    prepared_breastmnist,
                    settings,
                    registry=gate_cfg.registry,
                    export=gate_cfg.export,
                    actor="test",
                )
            event = rollback(settings, cfg.registry, actor="test")
        yield Story(settings, cfg, versions, decisions, event, run_ids)


def _client(story: Story):
    from mlflow import MlflowClient

    return MlflowClient(story.settings.tracking_uri)


def _tags(story: Story, kind: str) -> dict[str, str]:
    return _client(story).get_model_version("test-classifier", story.versions[kind].version).tags


def test_first_version_becomes_champion_on_floors(story: Story) -> None:
    d = story.decisions["weak"]
    assert d.promoted and d.outcome == "promoted", d.as_markdown()
    assert d.champion_before is None and d.comparison is None and d.reason.startswith("first version")
    assert {c.name for c in d.checks} == {"primary_min", "sensitivity_min", "ece", "export"}  # floors only
    lo, hi = d.cis["challenger"]
    assert lo < d.metrics["challenger"]["auc"] < hi
    assert "p(malignant) >= " in d.operating_point and "sensitivity >= 0.9 on validation" in d.operating_point


def test_identical_rerun_does_not_move_champion(story: Story) -> None:
    d = story.decisions["rerun"]
    weak = story.versions["weak"].version
    assert not d.promoted and d.outcome == "kept_champion" and d.failed == ["gain"]
    assert d.champion_before == weak and d.comparison.difference == 0.0 and d.comparison.ci == (0.0, 0.0)
    assert d.reason.startswith("kept champion: no significant gain")
    tags = _tags(story, "rerun")
    assert tags["gate.decision"] == "kept_champion" and tags["gate.paired.auc_difference_ci95"] == "[+0.0000, +0.0000]"
    assert tags["gate.reason"].startswith("kept champion: no significant gain")
    description = _client(story).get_model_version("test-classifier", story.versions["rerun"].version).description
    assert "KEPT CHAMPION" in description and "paired bootstrap 95% CI [+0.0000, +0.0000]" in description
    assert story.decisions["bad"].champion_before == weak  # the champion did not move


def test_worse_challenger_is_rejected(story: Story) -> None:
    d = story.decisions["bad"]
    assert not d.promoted and d.outcome == "rejected"
    assert {"primary_min", "gain"} <= set(d.failed) and set(d.cis) == {"challenger", "champion"}
    mv = _client(story).get_model_version("test-classifier", story.versions["bad"].version)
    tags = mv.tags
    assert tags["gate.decision"] == "rejected" and "primary_min" in tags["gate.failed"]
    assert tags["gate.paired.auc_difference"].startswith("-") and tags["gate.paired.auc_difference_ci95"]
    assert len(tags) <= 18 and not any(k.startswith("parity.latency") for k in tags)  # about a dozen tags
    # every check, its threshold and the CIs are in the card (the version's description), not in tags
    assert "primary_min" in mv.description and "0.6000" in mv.description and "Promotion gate" in mv.description


def test_better_on_average_model_failing_a_floor_is_not_promoted(story: Story) -> None:
    d = story.decisions["floor"]
    assert not d.promoted and d.outcome == "rejected" and d.failed == ["sensitivity_min"]
    assert d.comparison.difference > 0.1 and d.comparison.ci[0] > 0  # a real AUC gain ...
    assert d.reason.startswith("failed: sensitivity at the operating point")  # ... refused on the floor


def test_clearly_better_challenger_is_promoted(story: Story) -> None:
    d = story.decisions["good"]
    assert d.promoted and d.outcome == "promoted", d.as_markdown()
    assert d.champion_before == story.versions["weak"].version
    assert d.comparison.difference > 0.1 and d.comparison.ci[0] > story.cfg.registry.min_gain
    assert "significant gain over champion" in d.reason
    tags = _tags(story, "good")
    assert tags["gate.decision"] == "promoted" and tags["gate.failed"] == "none"
    aliases = _client(story).get_model_version("test-classifier", story.versions["good"].version).aliases
    assert "challenger" not in aliases  # moved off when it became champion
    assert tags["export.parity_passed"] == "true" and float(tags["parity.max_abs_diff"]) <= 1e-3
    assert "PROMOTED" in d.as_markdown()


def test_rollback_restores_previous_champion_and_history_lists_moves(story: Story) -> None:
    from components.registry.aliases import champion_version, history

    weak, good = story.versions["weak"].version, story.versions["good"].version
    assert story.rollback_event["from_version"] == good and story.rollback_event["to_version"] == weak
    assert champion_version(story.settings, story.cfg.registry) == weak
    moves = history(story.settings, story.cfg.registry, alias="champion")
    assert [(e["action"], e["from_version"], e["to_version"]) for e in moves] == [
        ("gate", None, weak),
        ("gate", weak, good),
        ("rollback", good, weak),
    ]
    assert all(e["flow_run_id"] == "flow-run-1234" and e["actor"] == "test" and e["time"] for e in moves)
    challengers = history(story.settings, story.cfg.registry, alias="challenger")
    # a promoted challenger loses @challenger (recorded); the others keep it until the next registration
    v = {k: x.version for k, x in story.versions.items()}
    expected = [v["weak"], None, v["rerun"], v["bad"], v["floor"], v["good"], None]
    assert [e["to_version"] for e in challengers] == expected
    assert all(e["action"] == "clear" for e in challengers if e["to_version"] is None)
    assert story.settings.audit_log.is_file()


def test_lineage_tags_on_run_and_version(story: Story) -> None:
    client = _client(story)
    v = story.versions["weak"]
    run_tags = client.get_run(v.run_id).data.tags
    version_tags = client.get_model_version(v.name, v.version).tags
    for tags in (run_tags, version_tags):
        assert tags["medpipe.data_version"] == "data-md5-abc"
        assert tags["medpipe.params_hash"] == story.cfg.params_hash()
        assert tags["medpipe.prefect_flow_run_id"] == "flow-run-1234"
        assert {"medpipe.git_commit", "medpipe.git_dirty", "medpipe.version"} <= set(tags)
    assert version_tags["export.parity_passed"] == "not_evaluated"
    assert client.get_model_version(v.name, v.version).run_id == v.run_id


def test_registered_model_has_onnx_and_pytorch_flavours(story: Story) -> None:
    import mlflow
    import numpy as np
    import onnx
    import torch
    import yaml

    from components.models.registry import Classifier
    from components.training.module import ClassifierModule

    mlflow.set_tracking_uri(story.settings.tracking_uri)
    uri = "models:/test-classifier@champion"
    proto = mlflow.onnx.load_model(f"models:/test-classifier/{story.versions['bad'].version}")
    assert isinstance(proto, onnx.ModelProto)
    net = mlflow.pytorch.load_model(uri)
    assert isinstance(net, Classifier)
    local = Path(mlflow.artifacts.download_artifacts(uri))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    assert mlmodel["flavors"]["onnx"]["data"] == "model.onnx" and (local / "model.onnx").is_file()
    assert "pytorch" in mlmodel["flavors"] and mlmodel["signature"]["inputs"]
    pre = json.loads((local / "preprocessing.json").read_text())
    assert pre["class_names"] == ["malignant", "normal_or_benign"] and len(pre["mean"]) == 1
    assert pre["operating_point"]["positive_class"] == "malignant" and 0 < pre["operating_point"]["threshold"] < 1
    module = ClassifierModule.load_from_checkpoint(local / "model.ckpt", map_location="cpu", weights_only=True)
    assert module.hparams["model"]["name"] == "cnn" and module.hparams["optim"]["epochs"] == 1  # WEAK's

    for (key, a), b in zip(module.net.state_dict().items(), net.state_dict().values(), strict=True):
        assert torch.equal(a, b), key  # the checkpoint's hyperparameters rebuild the registered network
    assert (local / "input_example.json").is_file()
    out = mlflow.pyfunc.load_model(uri).predict(np.zeros((3, 1, 28, 28), np.float32))
    assert out["probabilities"].shape == (3, 2) and np.allclose(out["probabilities"].sum(1), 1, atol=1e-5)


def test_model_card_and_gate_markdown_are_logged(story: Story) -> None:
    import mlflow

    client = _client(story)
    v = story.versions["bad"]
    description = client.get_model_version(v.name, v.version).description
    sections = ("## 0. Intended use", "## 1. Data", "## 2. Model and training", "### Test metrics", "### Per class",
                "### Calibration", "### Subgroups", "## 5. Change record", "## 7. Limitations")  # fmt: skip
    assert all(section in description for section in sections), description
    assert "REJECTED" in description and "data version (DVC): `data-md5-abc`" in description
    assert "- decision: p(malignant) >= " in description and "| sensitivity (recall of malignant) |" in description
    assert "Against the previous champion v" in description and "kind `weak` -> `bad`" in description
    mlflow.set_tracking_uri(story.settings.tracking_uri)
    card = mlflow.artifacts.load_text(f"runs:/{v.run_id}/model_cards/v{v.version}/model_card.md")
    assert card == description
    gate_md = mlflow.artifacts.load_text(f"runs:/{v.run_id}/gate/v{v.version}_gate_decision.md")
    assert "| gain | **FAIL**" in gate_md and "paired comparison: AUC difference -" in gate_md


def test_manual_promote_needs_reason_and_is_audited(story: Story) -> None:
    from components.registry.aliases import champion_version, history, promote
    from medpipe.errors import RegistryError

    bad = story.versions["bad"].version
    with pytest.raises(RegistryError, match="reason"):
        promote(bad, "  ", story.settings, story.cfg.registry, actor="test")
    with pytest.raises(RegistryError, match="no version '99'"):
        promote("99", "why not", story.settings, story.cfg.registry, actor="test")
    before = champion_version(story.settings, story.cfg.registry)
    event = promote(bad, "clinical review override", story.settings, story.cfg.registry, actor="alice")
    assert champion_version(story.settings, story.cfg.registry) == bad
    assert event["from_version"] == before and event["action"] == "promote"
    assert history(story.settings, story.cfg.registry, alias="champion")[-1]["reason"] == "clinical review override"
    tags = _client(story).get_model_version("test-classifier", bad).tags
    assert tags["gate.override"] == "clinical review override"


def test_mlflow_ui_serves_the_store(story: Story, tmp_path: Path) -> None:
    import subprocess

    import httpx

    from components.registry.ui import plan_ui, start_ui, stop_ui, wait_until_up
    from medpipe.config import UIConfig

    plan = plan_ui(story.settings, UIConfig(), port=free_port())
    assert plan.url.startswith("http://127.0.0.1:") and "--backend-store-uri" in plan.command
    log = (tmp_path / "ui.log").open("wb")
    proc = start_ui(plan, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until_up(plan.url, timeout_s=150, proc=proc), (tmp_path / "ui.log").read_text()[-2000:]
        page = httpx.get(plan.url + "/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        api = httpx.get(f"{plan.url}/api/2.0/mlflow/registered-models/get", params={"name": "test-classifier"},
                        timeout=10)  # fmt: skip
        assert api.status_code == 200
        body = api.json()
        aliases = {a["alias"]: a["version"] for a in body["registered_model"]["aliases"]}
        stored = _client(story).get_registered_model("test-classifier").aliases  # what the earlier tests left
        assert aliases == {k: str(v) for k, v in stored.items()} and "champion" in aliases
    finally:
        stop_ui(proc)
        log.close()
    assert proc.poll() is not None


def test_unreachable_server_gives_clear_error_and_keeps_checkpoint(trained, tmp_path: Path) -> None:
    import time

    from components.models.artifacts import load_model_dir
    from components.registry.register import register_model
    from medpipe.errors import RegistryError

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", url)
        settings = Settings(home=tmp_path / "state")
        cfg = PipelineConfig().with_overrides({"registry.retries": 2, "registry.retry_backoff_s": 0.2})
        model_dir = trained["good"].model_dir
        before = sorted(p.name for p in model_dir.iterdir())
        start = time.monotonic()
        with pytest.raises(RegistryError) as err:
            register_model(
                model_dir,
                trained["good"].onnx_path,
                settings,
                registry=cfg.registry,
                lineage=cfg.lineage(),
                run_id=None,
                data_version=None,
                metrics={},
            )
        elapsed = time.monotonic() - start
    message = str(err.value)
    assert url in message and "unreachable after 3 attempts" in message
    assert str(model_dir) in message and "kept" in message and "medpipe registry register" in message
    assert 0.5 < elapsed < 30  # retried with backoff (0.2 + 0.4 s), but bounded
    assert sorted(p.name for p in model_dir.iterdir()) == before
    load_model_dir(model_dir)  # the checkpoint is intact


def test_cli_list_history_and_rollback(story: Story, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from medpipe.cli import app
    from medpipe.settings import get_settings

    monkeypatch.setenv("MEDPIPE_HOME", str(story.settings.home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        opts = ["-S", "registry.model_name=test-classifier"]
        out = runner.invoke(app, ["registry", "list", *opts], env={"COLUMNS": "200"})
        assert out.exit_code == 0, out.output
        assert "@champion" in out.output and "rejected" in out.output
        out = runner.invoke(app, ["registry", "history", "--alias", "champion", *opts], env={"COLUMNS": "200"})
        assert out.exit_code == 0 and "rollback" in out.output
        out = runner.invoke(app, ["registry", "rollback", "--reason", "cli test", *opts])
        assert out.exit_code == 0, out.output
        assert "champion" in out.output and "cli test" in out.output
    finally:
        get_settings.cache_clear()


def test_cli_register_then_evaluate_a_model_folder(
    story: Story, trained, prepared_breastmnist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`registry register` (a registration run of its own, with the config's training params) then `registry
    evaluate` (the gate) under another model name: the sections the CLI hands over reach both."""
    from typer.testing import CliRunner

    from medpipe.cli import app
    from medpipe.settings import get_settings

    monkeypatch.setenv("MEDPIPE_HOME", str(story.settings.home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    good = trained["good"]
    sets = ("registry.model_name=cli-classifier", "registry.positive_class=malignant", "registry.min_primary=0.6",
            "registry.bootstrap_samples=200", "train.lr=0.0123")  # fmt: skip
    opts = [arg for item in sets for arg in ("-S", item)]
    try:
        runner = CliRunner()
        out = runner.invoke(app, ["registry", "register", str(good.model_dir), "--onnx", str(good.onnx_path), *opts])
        assert out.exit_code == 0, out.output
        mv = _client(story).get_model_version("cli-classifier", "1")
        run = _client(story).get_run(mv.run_id)
        assert run.info.run_name == "register" and run.data.params["train.lr"] == "0.0123"
        assert mv.aliases == ["challenger"] and mv.tags["medpipe.dataset"] == "breastmnist"
        args = ["registry", "evaluate", "1", "--prepared", str(prepared_breastmnist), *opts]
        out = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert out.exit_code == 0, out.output
        assert "version 1: PROMOTED to champion" in out.output
        assert str(_client(story).get_model_version_by_alias("cli-classifier", "champion").version) == "1"
    finally:
        get_settings.cache_clear()
