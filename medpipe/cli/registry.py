"""``medpipe registry ...`` (the MLflow model registry) and ``medpipe ui mlflow`` (the MLflow UI)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medpipe.cli.common import (
    JsonOpt,
    ParamsOpt,
    SetOpt,
    console,
    err_console,
    load_cli_config,
    print_json,
    settings,
)

app = typer.Typer(help="Inspect and move model aliases in the MLflow registry.", no_args_is_help=True)


@app.command("list")
def registry_list(as_json: JsonOpt = False, params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None) -> None:
    """List the registered versions: aliases, gate decision, primary metric, data version."""
    from components.registry.aliases import list_versions
    from medpipe.cli.registry_report import print_model_versions

    cfg = load_cli_config(params, overrides)
    rows = list_versions(settings(), cfg.registry)
    if as_json:
        print_json({"model": cfg.registry.model_name, "versions": rows})
        return
    print_model_versions(console, cfg.registry.model_name, rows, cfg.registry.primary_metric)


@app.command("promote")
def registry_promote(
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required; written to the audit log).")],
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Manual override: make VERSION the champion without the gate (audited)."""
    from components.registry.aliases import promote
    from medpipe.cli.registry_report import print_alias_event

    cfg = load_cli_config(params, overrides)
    print_alias_event(console, promote(version, reason, settings(), cfg.registry, actor="cli"))


@app.command("rollback")
def registry_rollback(
    reason: Annotated[str | None, typer.Option("--reason", help="Why (written to the audit log).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Move the champion back to the previous champion (from the audit log)."""
    from components.registry.aliases import rollback
    from medpipe.cli.registry_report import print_alias_event

    cfg = load_cli_config(params, overrides)
    print_alias_event(console, rollback(settings(), cfg.registry, actor="cli", reason=reason))


@app.command("history")
def registry_history(
    alias: Annotated[str | None, typer.Option("--alias", help="Only this alias (champion, challenger).")] = None,
    as_json: JsonOpt = False,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Every alias move of the configured model: who, which flow run, from, to, why, when."""
    from components.registry.aliases import history
    from medpipe.cli.registry_report import print_audit_history

    cfg = load_cli_config(params, overrides)
    events = history(settings(), cfg.registry, alias=alias)
    if as_json:
        print_json(events)
        return
    print_audit_history(console, events)


@app.command("register")
def registry_register(
    model_dir: Annotated[Path, typer.Argument(help="A trained model folder (model.ckpt, preprocessing.json).")],
    onnx: Annotated[Path | None, typer.Option("--onnx", help="The exported ONNX file to register with it.")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="The training run (default: a new run).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Register a model folder as a new @challenger (e.g. after the tracking server was unreachable)."""
    from components.registry.register import register_model
    from medpipe.cli.registry_report import print_registered

    cfg = load_cli_config(params, overrides)
    version = register_model(
        model_dir,
        onnx,
        settings(),
        registry=cfg.registry,
        lineage=cfg.lineage(),
        run_id=run_id,
        data_version=None,
        metrics={},
    )
    print_registered(console, version)


@app.command("evaluate")
def registry_evaluate(
    version: Annotated[str, typer.Argument(help="The version to gate (usually the @challenger).")],
    prepared: Annotated[Path, typer.Option("--prepared", help="The prepared dataset folder; its test split is used.")],
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Run the promotion gate: VERSION vs the champion on the same test set; promote if every check passes."""
    from components.registry.gate import evaluate_and_promote
    from medpipe.cli.registry_report import print_gate_decision

    cfg = load_cli_config(params, overrides)
    decision = evaluate_and_promote(
        version, prepared, settings(), registry=cfg.registry, export=cfg.export, actor="cli"
    )
    print_gate_decision(console, decision)


def mlflow_ui(
    port: Annotated[int | None, typer.Option("--port", help="Port (default: ui.mlflow_port from params).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """The MLflow UI: experiments, runs, registered models, aliases, model cards. Ctrl-C stops it.

    Serves the configured tracking store (or prints the URL of the tracking server when it is one)."""
    from components.registry.ui import plan_ui, start_ui, stop_ui, wait_until_up

    cfg = load_cli_config(params, overrides)
    current = settings()
    plan = plan_ui(current, cfg.ui, port=port)
    if plan.command is None:
        console.print(f"the tracking store is a server: open [bold]{plan.url}[/]")
        return
    proc = start_ui(plan)
    try:
        if not wait_until_up(plan.url, timeout_s=120, proc=proc):
            err_console.print(f"[bold red]error:[/] the MLflow UI did not start on {plan.url} (port in use? --port)")
            raise typer.Exit(2)
        console.print(f"MLflow UI on [bold]{plan.url}[/] (store {current.tracking_uri}); Ctrl-C stops it")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_ui(proc)
