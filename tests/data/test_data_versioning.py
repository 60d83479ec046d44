"""Real DVC in a temp git repo: ingest -> prepare -> repro -> push -> wipe -> pull, params changes, status."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from components.data.dataset import load_prepared
from components.data.versioning import (
    DvcError,
    checkout,
    data_status,
    data_version,
    dir_md5,
    dvc_lock,
    ingest_and_version,
    push,
    raw_version,
    repro,
)
from medpipe.cli import app
from medpipe.config import load_config
from medpipe.errors import DataError
from tests.helpers.project import corrupt_png, git


def _digests(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow  # three DVC stage runs in subprocesses, push, wipe and pull
def test_ingest_repro_push_wipe_pull_roundtrip(dvc_project) -> None:
    settings = dvc_project
    project = settings.project_dir
    cfg = load_config(project / "params.yaml").data
    result = ingest_and_version(cfg, settings)

    prepared = project / "data" / "prepared"
    assert result.recorded and result.path == prepared
    assert result.data_version == data_version(project) == dir_md5(prepared)
    assert result.raw_version == raw_version(project) == dir_md5(project / "data" / "raw")
    assert {s: sum(c.values()) for s, c in result.counts.items()} == {"train": 546, "val": 78, "test": 156}
    assert result.duplicates >= 1
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]["prepare"]
    assert lock["params"]["params.yaml"]["data.image_size"] == 28
    assert str(settings.dvc_cache_dir) in (project / ".dvc" / "config.local").read_text()
    assert result.pushed_to == settings.dvc_remote_url and any(Path(settings.dvc_remote_url).rglob("*"))

    # a second repro is a no-op: nothing rewritten
    mtimes = {p.name: p.stat().st_mtime_ns for p in prepared.iterdir()}
    assert repro(settings) == []
    assert {p.name: p.stat().st_mtime_ns for p in prepared.iterdir()} == mtimes
    assert data_status(settings).changes == ()

    # wipe the cache and the workspace copies, pull them back: identical content and md5
    before = _digests(prepared)
    shutil.rmtree(settings.dvc_cache_dir)
    shutil.rmtree(prepared)
    shutil.rmtree(project / "data" / "raw")
    runner = CliRunner()
    wiped = runner.invoke(app, ["data", "status"])
    assert "workspace differs" in wiped.output and "medpipe data pull" in wiped.output, wiped.output
    pulled = runner.invoke(app, ["data", "pull"])
    assert pulled.exit_code == 0, pulled.output
    assert "workspace matches the last versioned state" in pulled.output
    assert _digests(prepared) == before
    assert dir_md5(prepared) == result.data_version
    assert dir_md5(project / "data" / "raw") == result.raw_version

    # a params change reruns prepare and changes the data version
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("image_size: 28", "image_size: 32", 1))
    status = data_status(settings)
    assert any("params.yaml:data.image_size (modified)" in line for line in status.changes), status.changes
    assert repro(settings) == ["prepare"]
    assert load_prepared(prepared).image_size == 32
    assert data_version(project) not in (None, result.data_version)
    assert data_version(project) == dir_md5(prepared)


def test_override_outside_params_is_prepared_directly(dvc_project) -> None:
    settings = dvc_project
    project = settings.project_dir
    cfg = load_config(project / "params.yaml", overrides=["data.image_size=32"]).data
    result = ingest_and_version(cfg, settings, push=False)
    assert not result.recorded and result.path.parent == settings.home / "prepared"
    assert result.data_version == dir_md5(result.path) and result.image_size == 32
    assert any("not recorded in dvc.lock" in n and "data.image_size=32" in n for n in result.notes)
    assert data_version(project) is None and not (project / "data" / "prepared").exists()
    # the workspace stays on its recorded version (none yet): no raw folder that dvc.lock does not describe
    assert raw_version(project) is None and not (project / "data" / "raw").exists()
    assert result.raw_version and len(result.raw_version) == 32 + len(".dir")
    again = ingest_and_version(cfg, settings, push=False)
    assert (again.path, again.data_version) == (result.path, result.data_version)


@pytest.mark.slow  # two ingests through DVC stage subprocesses
def test_replacing_the_dataset_keeps_the_old_version_retrievable(dvc_project, make_folder) -> None:
    settings = dvc_project
    project = settings.project_dir
    params = str(project / "params.yaml")
    runner = CliRunner()
    first = runner.invoke(app, ["data", "ingest", "--params", params, "--no-push"])
    assert first.exit_code == 0, first.output
    old_version = data_version(project)
    assert old_version in first.output and "normal_or_benign" in first.output and "546" in first.output
    git(project, "add", "-A")
    git(project, "commit", "-qm", "breastmnist")

    folder = make_folder({"benign": 8, "malignant": 7}, size=(28, 28))
    second = runner.invoke(app, ["data", "ingest", str(folder), "--params", params])
    assert second.exit_code == 0, second.output
    new_version = data_version(project)
    assert new_version != old_version and new_version in second.output
    assert "benign" in second.output and "pushed to DVC remote" in second.output

    status = runner.invoke(app, ["data", "status"])
    assert status.exit_code == 0, status.output
    out = status.output
    assert new_version in out and "imagefolder 'imgs'" in out and "malignant" in out
    assert "workspace matches the last versioned state" in out
    assert "not committed to git" in out and "data/raw.dvc" in out
    as_json = runner.invoke(app, ["data", "status", "--json"])
    assert as_json.exit_code == 0, as_json.output
    state = json.loads(as_json.output)  # the same facts, complete, whatever the width
    assert state["data_version"] == new_version and state["workspace_changed"] is False
    assert state["counts"]["train"]["malignant"] > 0 and "data/raw.dvc" in state["uncommitted"]

    # the old dataset comes back through git + DVC
    git(project, "checkout", "-q", "HEAD", "--", "data/raw.dvc", "dvc.lock")
    changed = runner.invoke(app, ["data", "status"])
    assert "workspace differs from the last versioned state" in changed.output
    checkout(settings)
    assert dir_md5(project / "data" / "prepared") == old_version
    assert load_prepared(project / "data" / "prepared").class_names == ("malignant", "normal_or_benign")


def test_status_before_any_ingest(dvc_project) -> None:
    result = CliRunner().invoke(app, ["data", "status"])
    assert result.exit_code == 0, result.output
    assert "no versioned data yet" in result.output and "medpipe data ingest" in result.output


def test_invalid_source_never_touches_the_project(dvc_project, make_folder) -> None:
    settings = dvc_project
    folder = make_folder({"benign": 6, "malignant": 6})
    (folder / "benign" / "broken.png").write_bytes(corrupt_png(5))
    cfg = load_config(settings.project_dir / "params.yaml", overrides=[f"data.source={folder}"]).data
    with pytest.raises(DataError, match=rf"{folder / 'benign' / 'broken.png'}: corrupt or unreadable image"):
        ingest_and_version(cfg, settings)
    assert not (settings.project_dir / "data").exists() and not (settings.project_dir / ".dvc").exists()


def test_dvc_calls_are_serialised(tmp_path: Path) -> None:
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with dvc_lock(tmp_path):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    try:
        with pytest.raises(DvcError, match="has held the lock"), dvc_lock(tmp_path, timeout_s=0.3):
            pass
        with dvc_lock(tmp_path / "other-project", timeout_s=0.3):  # other projects are not blocked
            pass
    finally:
        release.set()
        thread.join()
    with dvc_lock(tmp_path, timeout_s=1), dvc_lock(tmp_path, timeout_s=1):  # re-entrant in one thread
        pass


def test_push_with_cache_and_remote_gone_is_an_error(dvc_project) -> None:
    """DVC only warns when the data to push is in neither the cache nor the remote: `data push` must fail."""
    settings = dvc_project
    ingest_and_version(load_config(settings.project_dir / "params.yaml").data, settings)
    assert push(settings) == settings.dvc_remote_url  # everything there: verified, no error
    shutil.rmtree(settings.dvc_cache_dir)
    shutil.rmtree(settings.dvc_remote_url)
    with pytest.raises(DvcError, match=r"did not store all the data: missing data/raw \(all of it") as err:
        push(settings)
    assert "data/prepared" in str(err.value) and "re-ingest" in str(err.value)


def test_skip_and_report_override_leaves_the_workspace_on_its_recorded_version(dvc_project, make_folder) -> None:
    settings = dvc_project
    project = settings.project_dir
    ingest_and_version(load_config(project / "params.yaml").data, settings, push=False)
    before = (raw_version(project), data_version(project), _digests(project / "data" / "prepared"))

    folder = make_folder({"benign": 8, "malignant": 8}, size=(28, 28))
    (folder / "benign" / "broken.png").write_bytes(corrupt_png(5))
    overrides = [f"data.source={folder}", "data.on_invalid=skip-and-report"]
    result = ingest_and_version(load_config(project / "params.yaml", overrides=overrides).data, settings)
    assert result.skipped == 1 and not result.recorded and result.pushed_to is None
    assert any("data.on_invalid='skip-and-report'" in n and "workspace data is unchanged" in n for n in result.notes)
    # raw, prepared and dvc.lock still describe one version: the old one
    after = (raw_version(project), data_version(project), _digests(project / "data" / "prepared"))
    assert after == before
    assert data_status(settings).changes == ()
