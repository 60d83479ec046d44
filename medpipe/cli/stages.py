"""``medpipe stage ...``: the DVC stages of ``dvc.yaml`` that are not a flow (``prepare``; the ``train`` stage
runs ``medpipe train``). Each reads params.yaml once and calls the function the flows call.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from medpipe.cli.common import ParamsOpt, console, load_cli_config

app = typer.Typer(help="The DVC stages (dvc.yaml runs these; `dvc repro` is the usual way in).", no_args_is_help=True)


@app.command("prepare")
def stage_prepare(
    params: ParamsOpt = Path("params.yaml"),
    raw: Annotated[Path, typer.Option("--raw", help="The raw dataset (DVC-tracked).")] = Path("data/raw"),
    out: Annotated[Path, typer.Option("--out", help="Where the prepared splits go.")] = Path("data/prepared"),
) -> None:
    """Validate and prepare data/raw into data/prepared (the splits every later stage reads)."""
    from components.data.prepare import prepare

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    result = prepare(raw, out, load_cli_config(params, None).data)
    totals = {s: sum(c.values()) for s, c in result.counts.items()}
    console.print(f"prepared {result.path}: classes {list(result.class_names)}, images per split {totals}")
