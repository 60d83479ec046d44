"""``medpipe monitor`` (one drift check of the champion) and ``medpipe ui evidently`` (the Evidently UI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medpipe.cli.common import ParamsOpt, SetOpt, console, err_console, load_cli_config, settings

app = typer.Typer(
    help="Drift check of the champion: served images (inference log) or a folder vs its reference profile.",
    invoke_without_command=True,
)


@app.callback()
def monitor(
    ctx: typer.Context,
    images: Annotated[
        Path | None, typer.Option("--images", help="Check a folder of image files instead of the inference log.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the machine-readable result.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Window start (ISO time); default: now - monitoring.window_hours.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Window end (ISO time); default: now.")] = None,
    last: Annotated[int | None, typer.Option("--last", help="Only the last N logged predictions.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model URI or ONNX folder (default: models:/<name>@champion).")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option("--reference", help="Reference profile folder (default: the model's own).")
    ] = None,
    alerts: Annotated[bool, typer.Option(help="Send alerts through the configured channels.")] = True,
    fail_on_drift: Annotated[bool, typer.Option(help="Exit 1 when drift is detected (CI).")] = False,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Run one drift check: verdict, signals vs thresholds, estimated accuracy; reports to HTML/JSON, the
    Evidently workspace and MLflow; alerts on a new drift condition."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import datetime
    from functools import partial

    from components.tracking import experiment_name
    from medpipe.cli.reporting import print_drift_summary
    from monitoring.check import current_window, load_champion, run_drift_check

    current = settings()
    cfg = load_cli_config(params, overrides)
    champion = load_champion(
        current, registry=cfg.registry, export=cfg.export, model_uri=model, reference_dir=reference
    )
    window_of = partial(
        current_window,
        cfg=cfg.monitoring,
        settings=current,
        images_dir=images,
        since=datetime.fromisoformat(since) if since else None,
        until=datetime.fromisoformat(until) if until else None,
        last=last,
        serving=cfg.serving,
    )
    result = run_drift_check(
        cfg.monitoring,
        current,
        window_of,
        experiment_name(cfg.project.name, "monitoring"),
        champion,
        alerts=cfg.alerts if alerts else None,
        project_name=cfg.project.name,
    )
    summary = result.summary
    for name, reason in result.skipped:  # one bad file never stops a check: skipped, and said so
        err_console.print(f"[yellow]skipped[/] {Path(images) / name}: {reason}")
    if as_json:
        typer.echo(summary.to_json())
    else:
        print_drift_summary(console, summary, result.alert, result.retrain)
    if fail_on_drift and summary.drift_detected:
        raise typer.Exit(1)


def evidently_ui(
    port: Annotated[int | None, typer.Option("--port", help="Port (default: ui.evidently_port).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """The Evidently UI on the local workspace: the history of drift checks. Ctrl-C stops it."""
    from medpipe.cli.processes import executable, run_until_interrupted
    from medpipe.processes import start

    cfg = load_cli_config(params, overrides)
    workspace = settings().evidently_workspace
    workspace.mkdir(parents=True, exist_ok=True)
    port = port or cfg.ui.evidently_port
    cmd = [executable("evidently"), "ui", "--workspace", str(workspace), "--host", cfg.ui.host, "--port", str(port)]
    console.print(f"Evidently UI on [bold]http://{cfg.ui.host}:{port}[/] (workspace {workspace}); Ctrl-C stops it")
    run_until_interrupted(start(cmd), stop_timeout_s=10)


app.command("ui", hidden=True)(evidently_ui)  # the old name of `medpipe ui evidently`
