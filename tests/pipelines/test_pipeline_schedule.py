"""Deployments from params.yaml: they build, crons parse, and a drift event starts training on a real server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.flows import PROFILE, Project
from tests.helpers.ports import free_port
from tests.helpers.project import make_project
from tests.helpers.wait import wait_until

MEDPIPE = str(Path(sys.executable).with_name("medpipe"))
STARTUP_S = 180  # a loaded 2-core box: prefect server + a process importing torch/lightning


def _cfg(project: Project, *overrides: str):
    from medpipe.config import load_config

    return load_config(project.root / project.params, overrides=list(overrides), profile=PROFILE)


def test_deployments_build_from_params(project: Project) -> None:
    from prefect.events import DeploymentEventTrigger

    from pipelines.schedule import DRIFT_EVENT, build_deployments

    cfg = _cfg(project)
    built = {d.name: d for d in build_deployments(cfg, project.params, PROFILE)}

    assert set(built) == {"monitoring-nightly", "training-weekly"}
    crons = {name: [s.schedule.cron for s in d.schedules] for name, d in built.items()}
    assert crons == {
        "monitoring-nightly": [cfg.schedule.monitoring_cron],
        "training-weekly": [cfg.schedule.training_cron],
    }
    assert all(s.schedule.timezone == cfg.schedule.timezone for d in built.values() for s in d.schedules)
    assert built["training-weekly"].parameters == {
        "params_path": project.params,
        "profile": PROFILE,
        "reason": "schedule",
    }
    assert built["monitoring-nightly"].triggers == []
    tuned = build_deployments(cfg, project.params, PROFILE, ["train.epochs=1"])
    assert all(d.parameters["overrides"] == ["train.epochs=1"] for d in tuned)
    (trigger,) = built["training-weekly"].triggers
    assert isinstance(trigger, DeploymentEventTrigger) and trigger.expect == {DRIFT_EVENT}
    assert trigger.match.model_dump()["prefect.resource.id"] == f"medpipe.model.{cfg.registry.model_name}"


def test_cron_strings_give_the_expected_next_runs(project: Project) -> None:
    from pipelines.schedule import build_deployments, next_runs

    runs = next_runs(_cfg(project), n=3, start=datetime(2026, 1, 1, tzinfo=UTC))  # a Thursday
    assert [d.isoformat() for d in runs["monitoring-nightly"]] == [
        "2026-01-01T02:00:00+00:00",
        "2026-01-02T02:00:00+00:00",
        "2026-01-03T02:00:00+00:00",
    ]
    assert [d.strftime("%a %d %H:%M") for d in runs["training-weekly"]] == [
        "Sun 04 03:00",
        "Sun 11 03:00",
        "Sun 18 03:00",
    ]
    with pytest.raises(ValueError, match="61 3"):
        build_deployments(_cfg(project, "schedule.training_cron=61 3 * * 0"), project.params)


def test_schedule_without_a_server_says_how_to_start_one(project: Project) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    out = subprocess.run([MEDPIPE, "schedule"], env=env, cwd=project.root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "medpipe ui prefect" in out.stderr and "PREFECT_API_URL" in out.stderr


def test_schedule_list_prints_each_deployment_and_its_next_runs(project: Project) -> None:
    from pipelines.schedule import next_runs

    env = {**os.environ, "COLUMNS": "120"}
    out = subprocess.run(
        [MEDPIPE, "schedule", "--list", "-n", "2"],
        env=env,
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "monitoring-nightly" in out.stdout and "training-weekly" in out.stdout
    assert "medpipe.drift.detected" in out.stdout
    for times in next_runs(_cfg(project), n=2).values():
        for t in times:
            assert t.strftime("%a %Y-%m-%d %H:%M") in out.stdout


# --- a real Prefect server -----------------------------------------------------------------------------------
def _wait(what: str, check: Callable[[], Any], timeout_s: float, procs: list[subprocess.Popen]) -> Any:
    return wait_until(check, what, timeout_s, procs=procs, ignore=(httpx.HTTPError, OSError), every_s=2)


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started in its own session, and everything it started (the runner's flow-run process)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    else:  # the leader is gone; its children may not be
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def prefect_server(tmp_path: Path, project: Project) -> Iterator[tuple[str, dict[str, str], Path]]:
    """`medpipe ui prefect` on a free port (PREFECT_HOME in tmp): yields its API URL, the env to reach it, a project."""
    port = free_port()
    root = make_project(tmp_path)  # its own project: the triggered run must not touch the session's DVC repo
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        MEDPIPE_HOME=str(tmp_path / "state"), MEDPIPE_PROJECT_DIR=str(root), PREFECT_HOME=str(tmp_path / "prefect")
    )
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen(
        [MEDPIPE, "ui", "prefect", "--port", str(port), "--timeout", str(STARTUP_S)],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait("the Prefect server", lambda: httpx.get(f"{url}/health", timeout=5).status_code == 200, STARTUP_S, [proc])
        yield url, {**env, "PREFECT_API_URL": url}, root
    finally:
        _stop(proc)
        log.close()


def _served(url: str) -> dict[str, Any] | None:
    """The training deployment, once `medpipe schedule` has registered it and its event trigger (automation)."""
    got = httpx.get(f"{url}/deployments/name/training/training-weekly", timeout=5)
    if got.status_code != 200:
        return None
    automations = httpx.post(f"{url}/automations/filter", json={}, timeout=5).json()
    return got.json() if any(a["name"] == "retrain-on-drift" for a in automations) else None


def _drift_runs(url: str) -> list[dict[str, Any]]:
    body = {"flows": {"name": {"any_": ["training"]}}}
    runs = httpx.post(f"{url}/flow_runs/filter", json=body, timeout=10).json()
    return [r for r in runs if str(r["parameters"].get("reason", "")).startswith("drift: ")]


@pytest.mark.slow
def test_drift_event_starts_a_training_run_on_a_real_server(
    prefect_server: tuple[str, dict[str, str], Path], project: Project, tmp_path: Path
) -> None:
    url, env, root = prefect_server
    model = _cfg(project).registry.model_name
    log = (tmp_path / "schedule.log").open("w")
    serve = subprocess.Popen(
        [MEDPIPE, "schedule", "--profile", PROFILE, "-S", "train.epochs=1"],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deployment = _wait("the served training deployment and its trigger", lambda: _served(url), STARTUP_S, [serve])
        assert _drift_runs(url) == []

        emit = (
            "from prefect.events import emit_event\n"
            "e = emit_event(event='medpipe.drift.detected',"
            f" resource={{'prefect.resource.id': 'medpipe.model.{model}'}},"
            " payload={'reason': 'embedding 0.81 > 0.55'})\n"
            "assert e is not None\n"
        )
        subprocess.run([sys.executable, "-c", emit], env=env, cwd=root, check=True, timeout=120)

        (run,) = _wait("a training flow run started by the event", lambda: _drift_runs(url), 120, [serve])
        assert run["deployment_id"] == deployment["id"]
        assert run["parameters"]["reason"] == "drift: embedding 0.81 > 0.55"
        assert run["parameters"]["overrides"] == ["train.epochs=1"]  # -S of `medpipe schedule` reach the runs

        # `schedule --list` shows what the server holds: schedules, the trigger automation and its state
        listed = subprocess.run(
            [MEDPIPE, "schedule", "--list", "--json"], cwd=root, env=env, capture_output=True, text=True, timeout=120
        )
        assert listed.returncode == 0, listed.stderr
        got = {d["name"]: d for d in json.loads(listed.stdout)["deployments"]}
        weekly = got["training/training-weekly"]
        assert json.loads(listed.stdout)["server"] == url
        assert weekly["schedules"] == [f"{_cfg(project).schedule.training_cron} UTC"] and not weekly["paused"]
        assert any(a.endswith(": enabled") for a in weekly["automations"]), weekly
        assert "monitoring/monitoring-nightly" in got
    finally:
        _stop(serve)
        log.close()
