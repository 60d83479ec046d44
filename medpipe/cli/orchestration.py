"""``medpipe schedule`` (serve the deployments) and ``medpipe ui prefect`` (a local Prefect server and its UI)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medpipe.cli.common import ParamsOpt, ProfileOpt, SetOpt, console, err_console, load_cli_config, settings

if TYPE_CHECKING:
    from medpipe.config import PipelineConfig

app = typer.Typer()


def _prefect_api_url() -> str | None:
    """The Prefect server this process talks to: PREFECT_API_URL (env or the Prefect profile), else None."""
    import os

    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


@app.command("schedule")
def schedule(
    list_only: Annotated[
        bool,
        typer.Option(
            "--list",
            help="Show the deployments, their schedules, event-trigger automations and next runs as the Prefect "
            "server holds them (without a server: what params.yaml declares).",
        ),
    ] = False,
    count: Annotated[int, typer.Option("--count", "-n", help="How many next runs to show per deployment.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="With --list: print JSON (never truncated).")] = False,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Serve every deployment from this process: nightly monitoring, weekly training, retraining on drift.

    Crons come from services.yaml `schedule:`; retraining starts on each `medpipe.drift.detected` event.
    Ctrl-C stops it. Needs a Prefect server: start one with `medpipe ui prefect` and export the PREFECT_API_URL
    it prints."""
    cfg = load_cli_config(params, overrides, profile)
    settings()
    from pipelines.schedule import planned

    if list_only:
        _list_schedules(cfg, count, as_json)
        return
    if not _prefect_api_url():
        err_console.print(
            "[bold red]error:[/] schedules and event triggers need a Prefect server, and PREFECT_API_URL is not set.\n"
            "Start one in another terminal with `medpipe ui prefect`, then "
            "`export PREFECT_API_URL=<the URL it prints>` and run `medpipe schedule` again "
            "(or point PREFECT_API_URL at your team's server)."
        )
        raise typer.Exit(2)
    from pipelines.schedule import serve_all

    console.print(f"serving {', '.join(d.name for d in planned(cfg))} against {_prefect_api_url()} (Ctrl-C stops)")
    serve_all(cfg, str(params), profile, overrides)


def _list_schedules(cfg: PipelineConfig, count: int, as_json: bool) -> None:
    import dataclasses
    import json

    from pipelines.schedule import next_runs, planned, server_deployments

    url = _prefect_api_url()
    if url:
        served = server_deployments(n=count)
        if as_json:
            typer.echo(json.dumps({"server": url, "deployments": [dataclasses.asdict(d) for d in served]}, indent=2))
            return
        from medpipe.cli.reporting import print_served_deployments

        print_served_deployments(console, url, served)
        return
    plan, runs = planned(cfg), next_runs(cfg, n=count)
    if as_json:
        rows = [{**dataclasses.asdict(d), "next_runs": [t.isoformat() for t in runs.get(d.name, [])]} for d in plan]
        typer.echo(json.dumps({"server": None, "deployments": rows}, indent=2))
        return
    from medpipe.cli.reporting import print_next_runs

    print_next_runs(console, plan, runs)
    console.print("no Prefect server (PREFECT_API_URL unset): this is what params.yaml declares, not what runs")


def prefect_ui(
    port: Annotated[int, typer.Option("--port", help="Port of the Prefect API and UI.")] = 4200,
    host: Annotated[str, typer.Option("--host", help="Bind address.")] = "127.0.0.1",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to answer.")] = 180.0,
) -> None:
    """A local Prefect server and its UI: flow runs, artifacts, deployments, automations. Ctrl-C stops it.

    SQLite under the state folder, analytics off; prints the PREFECT_API_URL that `medpipe schedule` needs."""
    import os

    from medpipe.cli.processes import executable, run_until_interrupted
    from medpipe.processes import ProcessExited, start, stop_process_group, wait_for_health

    prefect_home = settings().prefect_home
    prefect_home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to another server
    cmd = [executable("prefect"), "server", "start", "--host", host, "--port", str(port)]
    url = f"http://{host}:{port}"
    proc = start(cmd, env=env)
    try:
        with console.status(f"starting the Prefect server on {url} (PREFECT_HOME={prefect_home})"):
            up = wait_for_health(f"{url}/api/health", proc, timeout_s=timeout)
    except ProcessExited as err:
        err_console.print(f"[bold red]error:[/] `prefect server start` {err}; is port {port} in use? try --port")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        stop_process_group(proc, timeout_s=20)
        return
    if not up:
        stop_process_group(proc, timeout_s=20)
        err_console.print(f"[bold red]error:[/] the Prefect server did not answer on {url} in {timeout:.0f} s")
        raise typer.Exit(2)
    console.print(
        f"Prefect server up: UI [bold]{url}[/]\nin other terminals: [bold]export PREFECT_API_URL={url}/api[/] "
        "(then `medpipe schedule`, `medpipe run`, ...); Ctrl-C stops it"
    )
    run_until_interrupted(proc, stop_timeout_s=20)


app.command("server", hidden=True)(prefect_ui)  # the old name of `medpipe ui prefect`
