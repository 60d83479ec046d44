"""One pipeline: dvc.yaml's train stage is the training flow, and a flow run leaves DVC's own record."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from components.dvc_pipeline import (
    CONFUSION,
    METRICS,
    ROC,
    TRAIN_STAGE,
    differences,
    record_training,
    stage_params,
)
from medpipe.config import load_config
from tests.helpers.project import make_project

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_train_stage_runs_the_training_flow_and_lists_only_config_keys() -> None:
    stage = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"][TRAIN_STAGE]
    assert stage["cmd"].startswith("medpipe train --prepared data/prepared")  # the flow, not a second path
    keys = stage_params(REPO_ROOT)
    tree = load_config(REPO_ROOT / "params.yaml").model_dump(mode="json")
    for key in keys:  # every listed key is a real config key
        node = tree
        for part in key.split("."):
            assert isinstance(node, dict) and part in node, key
            node = node[part]
    # prose, secrets' neighbours and unrelated sections are not dependencies of training
    assert not any(k.startswith(("alerts", "serving", "schedule", "ui", "data")) for k in keys)
    assert "registry" not in keys and "registry.intended_use" not in keys
    assert stage["params"][:2] == ["profile", {"profiles.yaml": ["${profile}"]}]  # the active profile only


def test_differences_name_the_overridden_keys() -> None:
    params = REPO_ROOT / "params.yaml"
    keys = stage_params(REPO_ROOT)
    base = load_config(params)
    assert differences(load_config(params, profile="smoke"), base, keys) == []  # params.yaml's default profile
    changed = differences(load_config(params, overrides=["train.epochs=3", "serving.port=9"]), base, keys)
    assert changed == ["train.epochs=3"]  # serving is not a training dependency
    assert any(c.startswith("model.name=") for c in differences(load_config(params, profile="full"), base, keys))


def _project_with_code(root: Path, prepared: Path) -> Path:
    project = make_project(root)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("components", "monitoring", "pipelines", "medpipe"):
        shutil.copytree(REPO_ROOT / name, project / name, ignore=ignore, dirs_exist_ok=True)
    shutil.copy(REPO_ROOT / ".dvcignore", project / ".dvcignore")
    shutil.copytree(prepared, project / "data" / "prepared")
    return project


@pytest.fixture(scope="module")
def served_evaluation(served_cnn_dir, prepared_breastmnist):
    """The one evaluation of a served graph on the test split (what the training flow hands to the DVC record)."""
    from components.evaluation.evaluate import evaluate_served
    from medpipe.config import PipelineConfig

    cfg = PipelineConfig()
    return evaluate_served(
        served_cnn_dir / "model.onnx", prepared_breastmnist, registry=cfg.registry, export=cfg.export
    )


def test_a_flow_run_with_params_yaml_values_is_recorded_so_dvc_status_is_clean(
    tmp_path, monkeypatch, prepared_breastmnist, served_evaluation
) -> None:
    from dvc.repo import Repo

    from medpipe.settings import Settings

    project = _project_with_code(tmp_path, prepared_breastmnist)
    monkeypatch.chdir(project)
    monkeypatch.delenv("DVC_STAGE", raising=False)
    settings = Settings(home=tmp_path / "state", project_dir=project)
    from components.data.versioning import ensure_project

    ensure_project(settings)
    params = project / "params.yaml"
    prepared = project / "data" / "prepared"

    overridden = load_config(params, overrides=["train.epochs=3"])
    note = record_training(settings, overridden, params, prepared, served_evaluation, version="2", promoted=False)
    assert not note.recorded and "train.epochs=3" in note.note
    assert (project / METRICS).is_file() and not (project / "dvc.lock").exists()

    current = load_config(params)
    note = record_training(settings, current, params, prepared, served_evaluation, version="3", promoted=True)
    assert note.recorded, note.note
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"][TRAIN_STAGE]
    assert lock["params"]["params.yaml"]["profile"] == "smoke"
    assert {o["path"] for o in lock["outs"]} == {str(METRICS), str(ROC), str(CONFUSION)}
    with Repo(str(project)) as repo:
        assert repo.status(targets=[TRAIN_STAGE]) == {}  # `dvc status` up to date for what the run built
        metrics = repo.metrics.show()[""]["data"][str(METRICS)]["data"]
    assert metrics["version"] == 3 and metrics["promoted"] is True and 0.5 < metrics["test"]["auc"] <= 1.0

    # elsewhere-prepared data never touches the project's record
    other = record_training(
        settings, load_config(params), params, prepared_breastmnist, served_evaluation, version="4", promoted=False
    )
    assert not other.recorded and "not data/prepared" in other.note.replace(str(prepared_breastmnist), "")


def test_inside_dvc_repro_the_flow_leaves_the_lock_to_dvc(
    tmp_path, monkeypatch, prepared_breastmnist, served_evaluation
) -> None:
    from medpipe.settings import Settings

    project = make_project(tmp_path)
    shutil.copytree(prepared_breastmnist, project / "data" / "prepared")
    monkeypatch.setenv("DVC_STAGE", "train")
    settings = Settings(home=tmp_path / "state", project_dir=project)
    params = project / "params.yaml"
    overridden = load_config(params, overrides=["train.epochs=3"])  # under DVC the params *are* params.yaml
    note = record_training(
        settings, overridden, params, project / "data" / "prepared", served_evaluation, version="1", promoted=True
    )
    assert note.recorded and "DVC" in note.note
    assert (project / METRICS).is_file() and not (project / "dvc.lock").exists()


def _leaves(tree: dict, prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in tree.items():
        out += _leaves(value, f"{prefix}{key}.") if isinstance(value, dict) and value else [f"{prefix}{key}"]
    return out


def test_dvc_exp_show_lists_only_the_pipeline_keys(tmp_path) -> None:
    """`dvc exp show` / `dvc params show` columns: params.yaml (pipeline keys only) and the active profile; no
    serving, alert, schedule or UI settings, no card prose, no inactive profile."""
    from dvc.repo import Repo

    project = make_project(tmp_path)
    Repo.init(str(project)).close()
    with Repo(str(project)) as repo:
        shown = repo.params.show()[""]["data"]  # what exp show collects (whole params.yaml + stage deps)
    assert set(shown) == {"params.yaml", "profiles.yaml"}  # services.yaml is not DVC's
    keys = [f"{name}:{k}" for name, entry in shown.items() for k in _leaves(entry["data"])]
    assert all(not k.split(":")[1].startswith(("serving.", "alerts.", "schedule.", "ui.")) for k in keys), keys
    assert not any(k.endswith(("intended_use", "limitations", "out_of_scope", "retries", "window_hours")) for k in keys)
    assert not any(k.startswith(("profiles.yaml:cpu", "profiles.yaml:full")) for k in keys)  # only the active one
    assert any(k.startswith("profiles.yaml:smoke.") for k in keys) and "params.yaml:train.epochs" in keys
    assert len(keys) < 160, len(keys)  # 143 on main at 11:30 UTC; was ~200 with the services and every profile

    # every key shown is read by a stage: a listed key, or inside a listed section
    listed = {k for stage in ("prepare", "train") for k in stage_params(project, stage)}
    listed |= {"profile", "data.source"}  # the source is read by ingest, which `dvc add`s data/raw (no stage)
    params_keys = [k.split(":")[1] for k in keys if k.startswith("params.yaml:")]
    unread = [k for k in params_keys if not any(k == p or k.startswith(p + ".") for p in listed)]
    assert unread == [], unread
    # and the services' settings still reach the config
    assert load_config(project / "params.yaml").serving.port == 8000
    assert load_config(project / "params.yaml", overrides=["serving.port=9001"]).serving.port == 9001


def test_dvc_exp_run_set_params_win_over_the_profile(tmp_path, monkeypatch) -> None:
    """`dvc exp run -S train.epochs=2` edits params.yaml; the smoke profile also sets train.epochs. Inside the
    experiment the edit must win, as `medpipe run -S train.epochs=2` does (the profile silently won before)."""
    from components.dvc_pipeline import experiment_overrides
    from tests.helpers.project import git

    project = make_project(tmp_path)
    git(project, "add", "params.yaml", "profiles.yaml")
    git(project, "commit", "-qm", "baseline")
    params = project / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["train"]["epochs"], raw["registry"]["min_primary"] = 2, 0.5  # what `dvc exp run -S ...` writes
    raw["search"]["space"]["train.lr"]["high"] = 0.002
    params.write_text(yaml.safe_dump(raw, sort_keys=False))

    assert experiment_overrides(params) == []  # not inside `dvc exp run`: params.yaml + profile as always
    assert load_config(params).train.epochs == 6  # the smoke profile's value

    monkeypatch.setenv("DVC_STAGE", "train")
    monkeypatch.setenv("DVC_ROOT", str(project))
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", git(project, "rev-parse", "HEAD").strip())
    changed = experiment_overrides(params)
    assert sorted(c.split("=")[0] for c in changed) == ["registry.min_primary", "search.space", "train.epochs"]
    cfg = load_config(params, overrides=changed)
    assert cfg.train.epochs == 2 and cfg.registry.min_primary == 0.5 and cfg.search.space["train.lr"].high == 0.002
    as_run = load_config(params, overrides=["train.epochs=2", "registry.min_primary=0.5"])  # `medpipe run -S`
    assert cfg.train == as_run.train and cfg.model == as_run.model and cfg.registry == as_run.registry
