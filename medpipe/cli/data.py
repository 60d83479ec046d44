"""``medpipe data ...``: ingest, validate, prepare and version datasets (DVC)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medpipe.cli.common import JsonOpt, ParamsOpt, SetOpt, console, load_cli_config, print_json, settings

app = typer.Typer(help="Ingest, validate, prepare and version datasets (DVC).", no_args_is_help=True)


@app.command("ingest")
def data_ingest(
    source: Annotated[str | None, typer.Argument(help="Dataset (default: data.source from params).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
    push: Annotated[bool, typer.Option(help="Push the new version to the DVC remote.")] = True,
) -> None:
    """Validate a dataset, copy it into the DVC-tracked workspace, prepare it and version it."""
    from components.data.versioning import ingest_and_version
    from medpipe.cli.reporting import print_data_summary

    cfg = load_cli_config(params, overrides, data=source)
    result = ingest_and_version(cfg.data, settings(), push=push)
    print_data_summary(console, result)


@app.command("status")
def data_status(as_json: JsonOpt = False) -> None:
    """Show the current data version, class counts per split and whether the workspace changed."""
    import dataclasses

    from components.data.versioning import data_status as status
    from medpipe.cli.reporting import print_data_status

    current = status(settings())
    if as_json:
        print_json({**dataclasses.asdict(current), "workspace_changed": current.workspace_changed})
        return
    print_data_status(console, current)


@app.command("pull")
def data_pull() -> None:
    """Fetch the versioned raw and prepared data (data/raw.dvc, dvc.lock) from the DVC remote."""
    from components.data.versioning import data_status as status
    from components.data.versioning import pull
    from medpipe.cli.reporting import print_data_status

    current = settings()
    pull(current)
    print_data_status(console, status(current))


@app.command("push")
def data_push() -> None:
    """Upload the versioned raw and prepared data to the DVC remote."""
    from components.data.versioning import push

    console.print(f"pushed data/raw and data/prepared to {push(settings())}")
