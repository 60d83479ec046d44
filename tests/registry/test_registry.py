"""Registration, the promotion gate, aliases and the audit log on a real MLflow sqlite store.

One store per module: good model (v1, becomes champion), deliberately bad one (v2, rejected), a better
one (v3, promoted), then a rollback; the tests below read that story and check each part of it.
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
    from components.tracking import experiment_name, lineage_tags, setup_mlflow

    home = tmp_path_factory.mktemp("store")
    empty_mlflow_db(home)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        mp.setenv("PREFECT__FLOW_RUN_ID", "flow-run-1234")
        settings = Settings(home=home)
        assert settings.tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
        cfg = PipelineConfig().with_overrides(
            {
                "registry.model_name": "test-classifier",
                "registry.positive_class": "malignant",
                "registry.bootstrap_samples": 200,
                "registry.min_primary": 0.7,
                "registry.retries": 1,
                "registry.retry_backoff_s": 0.1,
            }
        )
        setup_mlflow(settings, experiment_name(cfg))
        versions, decisions, run_ids = {}, {}, {}
        for kind in ("good", "bad", "better"):
            with mlflow.start_run(run_name=f"train-{kind}") as run:
                mlflow.set_tags(lineage_tags(cfg, "data-md5-abc", settings))
                mlflow.log_params({"train.lr": 0.002, "kind": kind})
            run_ids[kind] = run.info.run_id
            versions[kind] = register_model(
                trained[kind].model_dir,
                trained[kind].onnx_path,
                cfg,
                settings,
                run_id=run.info.run_id,
                data_version="data-md5-abc",
                metrics={"auc": 0.5},
                parity=FakeParity(passed=True) if kind == "better" else None,
            )
            decisions[kind] = evaluate_and_promote(versions[kind], prepared_breastmnist, cfg, settings, actor="test")
        event = rollback(settings, cfg, actor="test")
        yield Story(settings, cfg, versions, decisions, event, run_ids)


def _client(story: Story):
    from mlflow import MlflowClient

    return MlflowClient(story.settings.tracking_uri)


def test_first_good_model_becomes_champion(story: Story) -> None:
    d = story.decisions["good"]
    assert d.promoted, d.as_markdown()
    assert d.champion_before is None
    assert {c.name for c in d.checks} == {"primary_min", "ece", "export"}  # absolute gates only
    assert d.metrics["challenger"]["auc"] >= 0.7
    lo, hi = d.cis["challenger"]
    assert lo < d.metrics["challenger"]["auc"] < hi


def test_worse_challenger_is_rejected_and_champion_untouched(story: Story) -> None:
    d = story.decisions["bad"]
    assert not d.promoted
    assert d.champion_before == story.versions["good"].version
    assert "primary_vs_champion" in d.failed and "primary_min" in d.failed
    assert set(d.cis) == {"challenger", "champion"}
    mv = _client(story).get_model_version("test-classifier", story.versions["bad"].version)
    tags = mv.tags
    assert tags["gate.decision"] == "rejected"
    assert "primary_vs_champion" in tags["gate.failed"]
    assert len(tags) <= 16 and not any(k.startswith("parity.latency") for k in tags)  # about a dozen tags
    # every check, its threshold and the CIs are in the card (the version's description), not in tags
    assert "primary_min" in mv.description and "0.7" in mv.description and "Promotion gate" in mv.description
    # the champion did not move on rejection: the next decision still saw v1 as champion
    assert story.decisions["better"].champion_before == story.versions["good"].version


def test_better_challenger_is_promoted(story: Story) -> None:
    d = story.decisions["better"]
    assert d.promoted, d.as_markdown()
    assert {"primary_vs_champion", "sensitivity_vs_champion"} <= {c.name for c in d.checks}
    tags = _client(story).get_model_version("test-classifier", story.versions["better"].version).tags
    assert tags["gate.decision"] == "promoted" and tags["gate.failed"] == "none"
    aliases = _client(story).get_model_version("test-classifier", story.versions["better"].version).aliases
    assert "challenger" not in aliases  # moved off when it became champion
    assert tags["export.parity_passed"] == "true" and float(tags["parity.max_abs_diff"]) <= 1e-3
    assert "PROMOTED" in d.as_markdown()


def test_rollback_restores_previous_champion_and_history_lists_moves(story: Story) -> None:
    from components.registry.aliases import champion_version, history

    good, better = story.versions["good"].version, story.versions["better"].version
    assert story.rollback_event["from_version"] == better and story.rollback_event["to_version"] == good
    assert champion_version(story.settings, story.cfg) == good
    moves = history(story.settings, story.cfg, alias="champion")
    assert [(e["action"], e["from_version"], e["to_version"]) for e in moves] == [
        ("gate", None, good),
        ("gate", good, better),
        ("rollback", better, good),
    ]
    assert all(e["flow_run_id"] == "flow-run-1234" and e["actor"] == "test" and e["time"] for e in moves)
    challengers = history(story.settings, story.cfg, alias="challenger")
    # a promoted challenger loses @challenger (recorded); the rejected one keeps it until the next registration
    assert [e["to_version"] for e in challengers] == [good, None, story.versions["bad"].version, better, None]
    assert all(e["action"] == "clear" for e in challengers if e["to_version"] is None)
    assert story.settings.audit_log.is_file()


def test_lineage_tags_on_run_and_version(story: Story) -> None:
    client = _client(story)
    v = story.versions["good"]
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
    import yaml

    from components.models.registry import Classifier

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
    assert json.loads((local / "model_config.json").read_text())["name"] == "cnn"
    assert (local / "input_example.json").is_file()
    out = mlflow.pyfunc.load_model(uri).predict(np.zeros((3, 1, 28, 28), np.float32))
    assert out["probabilities"].shape == (3, 2) and np.allclose(out["probabilities"].sum(1), 1, atol=1e-5)


def test_model_card_and_gate_markdown_are_logged(story: Story) -> None:
    import mlflow

    client = _client(story)
    v = story.versions["bad"]
    description = client.get_model_version(v.name, v.version).description
    for section in ("## Intended use", "## Out of scope", "## Test metrics", "### Per class", "## Calibration"):
        assert section in description
    assert "REJECTED" in description and "data_version: `data-md5-abc`" in description
    mlflow.set_tracking_uri(story.settings.tracking_uri)
    card = mlflow.artifacts.load_text(f"runs:/{v.run_id}/model_cards/v{v.version}/model_card.md")
    assert card == description
    gate_md = mlflow.artifacts.load_text(f"runs:/{v.run_id}/gate/v{v.version}_gate_decision.md")
    assert "primary_vs_champion" in gate_md and "**FAIL**" in gate_md


def test_manual_promote_needs_reason_and_is_audited(story: Story) -> None:
    from components.errors import RegistryError
    from components.registry.aliases import champion_version, history, promote

    bad = story.versions["bad"].version
    with pytest.raises(RegistryError, match="reason"):
        promote(bad, "  ", story.settings, story.cfg, actor="test")
    with pytest.raises(RegistryError, match="no version '99'"):
        promote("99", "why not", story.settings, story.cfg, actor="test")
    before = champion_version(story.settings, story.cfg)
    event = promote(bad, "clinical review override", story.settings, story.cfg, actor="alice")
    assert champion_version(story.settings, story.cfg) == bad
    assert event["from_version"] == before and event["action"] == "promote"
    assert history(story.settings, story.cfg, alias="champion")[-1]["reason"] == "clinical review override"
    tags = _client(story).get_model_version("test-classifier", bad).tags
    assert tags["gate.override"] == "clinical review override"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_ui_serves_the_store(story: Story, tmp_path: Path) -> None:
    import subprocess
    import urllib.request

    from components.registry.ui import plan_ui, start_ui, stop_ui, wait_until_up
    from medpipe.config import UIConfig

    plan = plan_ui(story.settings, UIConfig(), port=_free_port())
    assert plan.url.startswith("http://127.0.0.1:") and "--backend-store-uri" in plan.command
    log = (tmp_path / "ui.log").open("wb")
    proc = start_ui(plan, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until_up(plan.url, timeout_s=150, proc=proc), (tmp_path / "ui.log").read_text()[-2000:]
        with urllib.request.urlopen(plan.url + "/", timeout=10) as resp:
            assert resp.status == 200 and b"<html" in resp.read().lower()
        api = f"{plan.url}/api/2.0/mlflow/registered-models/get?name=test-classifier"
        with urllib.request.urlopen(api, timeout=10) as resp:
            assert resp.status == 200
            body = json.loads(resp.read())
        aliases = {a["alias"]: a["version"] for a in body["registered_model"]["aliases"]}
        assert aliases["champion"] == story.versions["good"].version and "challenger" not in aliases
    finally:
        stop_ui(proc)
        log.close()
    assert proc.poll() is not None


def test_unreachable_server_gives_clear_error_and_keeps_checkpoint(trained, tmp_path: Path) -> None:
    import time

    from components.errors import RegistryError
    from components.models.artifacts import load_model_dir
    from components.registry.register import register_model

    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", url)
        settings = Settings(home=tmp_path / "state")
        cfg = PipelineConfig().with_overrides({"registry.retries": 2, "registry.retry_backoff_s": 0.2})
        model_dir = trained["good"].model_dir
        before = sorted(p.name for p in model_dir.iterdir())
        start = time.monotonic()
        with pytest.raises(RegistryError) as err:
            register_model(
                model_dir, trained["good"].onnx_path, cfg, settings, run_id=None, data_version=None, metrics={}
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
