"""``medpipe run``: the whole pipeline as one Prefect flow."""

from __future__ import annotations

from pathlib import Path

import typer

from medpipe.cli.common import DataOpt, ParamsOpt, ProfileOpt, SetOpt, console, load_cli_config, settings

app = typer.Typer()


@app.command("run")
def run(
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
    profile: ProfileOpt = None,
    data: DataOpt = None,
) -> None:
    """Run the whole pipeline as a Prefect flow (ephemeral Prefect unless PREFECT_API_URL is set)."""
    current = settings()
    load_cli_config(params, overrides, profile, data)  # fail fast on a bad param, before Prefect starts
    from medpipe.cli.reporting import print_pipeline_summary
    from pipelines.full import pipeline

    overrides = [*(overrides or []), *([f"data.source={data}"] if data else [])]
    summary = pipeline(str(params), profile, overrides)
    print_pipeline_summary(console, summary, current)
