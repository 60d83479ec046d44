"""infra/prefect.yaml through Prefect's own loaders: the `prefect deploy` model, schedules, triggers, pools."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from tests.helpers.infra import INFRA, REPO_ROOT

PREFECT_YAML = INFRA / "prefect.yaml"


@pytest.fixture(scope="module")
def deploy_configs() -> dict[str, dict[str, Any]]:
    """The deployments exactly as `prefect deploy` reads them (fails on any validation message)."""
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions

    console = Console(record=True, width=200)
    configs, actions = _load_deploy_configs_and_actions(PREFECT_YAML, console=console)
    assert console.export_text() == "", console.export_text()
    assert actions["build"] == [] and actions["push"] == []
    return {c["name"]: c for c in configs}


def _pool_variables(pool: str) -> dict[str, Any]:
    if pool == "medpipe-k8s":
        return json.loads((INFRA / "k8s/prefect-gpu-job-template.json").read_text())["variables"]
    from prefect.workers.process import ProcessWorker

    return ProcessWorker.get_default_base_job_template()["variables"]


def test_the_documented_deployments_exist(deploy_configs: dict[str, dict[str, Any]]) -> None:
    assert {name: c["entrypoint"] for name, c in deploy_configs.items()} == {
        "monitoring-nightly": "pipelines/monitoring_flow.py:monitoring_flow",
        "training-weekly": "pipelines/training.py:training_flow",
        "training-cpu": "pipelines/training.py:training_flow",
        "data": "pipelines/data.py:data_flow",
        "deployment": "pipelines/deployment.py:deployment_flow",
        "pipeline": "pipelines/full.py:pipeline",
    }
    pools = {name: c["work_pool"]["name"] for name, c in deploy_configs.items()}
    assert pools.pop("training-weekly") == "medpipe-k8s"
    assert set(pools.values()) == {"medpipe-process"}


def test_schedules_parse_and_match_params(deploy_configs: dict[str, dict[str, Any]]) -> None:
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
    from prefect.client.schemas.schedules import CronSchedule

    params = yaml.safe_load((REPO_ROOT / "services.yaml").read_text())["schedule"]
    expected = {
        "monitoring-nightly": params["monitoring_cron"],
        "training-weekly": params["training_cron"],
    }
    scheduled = {name: c["schedules"] for name, c in deploy_configs.items() if c.get("schedules")}
    assert set(scheduled) == set(expected)
    for name, schedules in scheduled.items():
        (spec,) = schedules
        built = _schedule_config_to_deployment_schedule(spec)["schedule"]
        assert isinstance(built, CronSchedule)
        assert built.cron == expected[name] and built.timezone == params["timezone"]
        assert spec["active"] is True


def test_next_run_times_as_the_server_computes_them(deploy_configs: dict[str, dict[str, Any]]) -> None:
    """The Prefect server's own schedule code: nightly at 02:00, training on Sundays at 03:00 (UTC)."""
    import asyncio
    from datetime import datetime

    from prefect.server.schemas.schedules import CronSchedule

    after = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday

    def next_runs(name: str) -> list[datetime]:
        spec = deploy_configs[name]["schedules"][0]
        schedule = CronSchedule(cron=spec["cron"], timezone=spec["timezone"])
        return asyncio.run(schedule.get_dates(n=2, start=after))

    nightly = next_runs("monitoring-nightly")
    assert [(d.day, d.hour, d.minute) for d in nightly] == [(25, 2, 0), (26, 2, 0)]
    weekly = next_runs("training-weekly")
    assert [(d.weekday(), d.day, d.hour) for d in weekly] == [(6, 29, 3), (6, 6, 3)]


def test_drift_event_trigger_validates(deploy_configs: dict[str, dict[str, Any]]) -> None:
    from datetime import datetime

    from prefect.cli.deploy._triggers import _initialize_deployment_triggers
    from prefect.events import DeploymentEventTrigger
    from prefect.events.schemas.events import ReceivedEvent, Resource

    specs = deploy_configs["training-weekly"]["triggers"]
    (trigger,) = _initialize_deployment_triggers("training-weekly", [dict(s) for s in specs])
    assert isinstance(trigger, DeploymentEventTrigger)
    assert trigger.expect == {"medpipe.drift.detected"} and trigger.enabled
    assert trigger.threshold == 1
    # the parameters are Jinja templates over the event; render them as the automation would
    from prefect.server.utilities.user_templates import render_user_template_sync, validate_user_template

    event = ReceivedEvent(
        event="medpipe.drift.detected",
        resource=Resource({"prefect.resource.id": "medpipe.model.breastmnist-classifier"}),
        payload={"reason": "drift share 0.62 > 0.5"},
        received=datetime.now(UTC),
    )
    template = trigger.parameters["reason"]
    validate_user_template(template)
    rendered = render_user_template_sync(template, {"event": event})
    assert rendered.startswith("drift: drift share 0.62 > 0.5 (medpipe.model.breastmnist-classifier, event ")
    assert str(event.id) in rendered
    # only the drift trigger starts runs by event
    assert [n for n, c in deploy_configs.items() if c.get("triggers")] == ["training-weekly"]


def test_job_variables_fit_each_pool(deploy_configs: dict[str, dict[str, Any]]) -> None:
    from prefect.server.schemas.actions import WorkPoolCreate
    from prefect.utilities.schema_tools import validate

    for pool in ("medpipe-process", "medpipe-k8s"):
        if pool == "medpipe-k8s":
            template = json.loads((INFRA / "k8s/prefect-gpu-job-template.json").read_text())
            WorkPoolCreate(name=pool, type="kubernetes", base_job_template=template)
    for config in deploy_configs.values():
        variables = config["work_pool"].get("job_variables", {})
        schema = _pool_variables(config["work_pool"]["name"])
        validate(variables, schema, raise_on_error=True, preprocess=True, ignore_required=True)
    assert deploy_configs["training-weekly"]["work_pool"]["job_variables"]["gpu_count"] == 1
    # the pool schema rejects a wrong type: validation is not vacuous
    with pytest.raises(Exception, match="gpu_count"):
        validate({"gpu_count": "two"}, _pool_variables("medpipe-k8s"), raise_on_error=True, preprocess=True)


def test_worker_started_flow_runs_get_the_environment_the_cli_sets(deploy_configs: dict[str, dict[str, Any]]) -> None:
    """Only the CLI writes the environment (medpipe/cli/environment.py); a flow run started by a worker has no
    CLI above it, so every deployment's job variables carry the same variables."""
    from medpipe.cli.environment import FLOW_RUN_ENV

    for name, config in deploy_configs.items():
        assert config["work_pool"]["job_variables"].get("env") == FLOW_RUN_ENV, name


def test_k8s_deployments_run_the_code_in_the_image(deploy_configs: dict[str, dict[str, Any]]) -> None:
    dockerfile = (INFRA / "Dockerfile").read_text()
    for config in deploy_configs.values():
        if config["work_pool"]["name"] == "medpipe-k8s":
            (step,) = config["pull"]
            directory = step["prefect.deployments.steps.set_working_directory"]["directory"]
            assert f"WORKDIR {directory}" in dockerfile
        else:
            assert "pull" not in config  # process pool: the directory `prefect deploy` ran in


def _load_flow(entrypoint: str):
    path, _, _ = entrypoint.partition(":")
    assert (REPO_ROOT / path).is_file(), f"prefect.yaml names {path}, which does not exist"
    from prefect.flows import load_flow_from_entrypoint

    return load_flow_from_entrypoint(str(REPO_ROOT / entrypoint))


@pytest.mark.parametrize(
    "entrypoint",
    [
        "pipelines/monitoring_flow.py:monitoring_flow",
        "pipelines/training.py:training_flow",
        "pipelines/data.py:data_flow",
        "pipelines/deployment.py:deployment_flow",
        "pipelines/full.py:pipeline",
    ],
)
def test_entrypoints_resolve_and_accept_the_parameters(
    deploy_configs: dict[str, dict[str, Any]], entrypoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO_ROOT)
    flow = _load_flow(entrypoint)
    accepted = set(inspect.signature(flow.fn).parameters)
    for name, config in deploy_configs.items():
        if config["entrypoint"] != entrypoint:
            continue
        given = set(config.get("parameters", {}))
        for schedule in config.get("schedules") or []:
            given |= set(schedule.get("parameters", {}))
        for trigger in config.get("triggers") or []:
            given |= set(trigger.get("parameters", {}))
        assert given <= accepted, f"{name}: {sorted(given - accepted)} not parameters of {entrypoint}"


def test_bootstrap_script_deploys_every_deployment(deploy_configs: dict[str, dict[str, Any]]) -> None:
    script = INFRA / "bootstrap-prefect.sh"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=10)
    named = set(re.findall(r"--name ([\w-]+)", script.read_text()))
    assert named == set(deploy_configs)
    assert "infra/k8s/prefect-gpu-job-template.json" in script.read_text()
    assert re.search(r"prefect gcl create gpu --limit", script.read_text())


def test_compose_bootstrap_sends_training_to_the_process_pool(compose_model: dict[str, Any]) -> None:
    bootstrap = compose_model["services"]["prefect-bootstrap"]
    assert bootstrap["command"] == ["bash", "infra/bootstrap-prefect.sh"]
    assert bootstrap["environment"]["MEDPIPE_TRAINING_POOL"] == "medpipe-process"
    assert Path(REPO_ROOT / "infra/bootstrap-prefect.sh").stat().st_mode & 0o111
