"""``medpipe run``: the whole pipeline as one Prefect flow."""

from __future__ import annotations

from pathlib import Path

import typer

from medpipe.cli.common import DataOpt, ParamsOpt, ProfileOpt, RunSetOpt, console, load_cli_config, settings

app = typer.Typer()


@app.command("run")
def run(
    params: ParamsOpt = Path("params.yaml"),
    overrides: RunSetOpt = None,
    profile: ProfileOpt = None,
    data: DataOpt = None,
) -> None:
    """Run the whole pipeline as Prefect flows and print a summary.

    data (DVC) -> search + train -> register + gate -> deploy -> first drift check.
    Prefect runs ephemeral unless PREFECT_API_URL is set."""
    current = settings()
    cfg = load_cli_config(params, overrides, profile, data)  # a bad param fails here, before Prefect starts
    from components.data.sources import resolve_source

    resolve_source(cfg.data.source, current)  # so does a wrong --data (and a MedMNIST name is fetched once)
    from medpipe.cli import next_steps
    from medpipe.cli.logs import route_training_libraries
    from medpipe.cli.reporting import print_pipeline_summary

    route_training_libraries()
    from pipelines.full import pipeline

    overrides = [*(overrides or []), *([f"data.source={data}"] if data else [])]
    summary = pipeline(str(params), profile, overrides, config=cfg)
    plain = load_cli_config(params, None) if overrides or profile else cfg  # what a later `medpipe serve` picks
    model_args = next_steps.model_args(params, cfg.registry.model_name, plain.registry.model_name)
    print_pipeline_summary(console, summary, current, model_args)
