"""What every command module shares: the consoles, the common options and the one config loader.

Only typer and rich are imported here, so that ``medpipe --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from medpipe.config import PipelineConfig
    from medpipe.settings import Settings

# Piped or redirected, Rich would assume 80 columns and fold or cut long values: give it room instead.
_PIPED_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
console = Console(width=_PIPED_WIDTH)
err_console = Console(stderr=True, width=_PIPED_WIDTH)

ParamsOpt = Annotated[Path, typer.Option("--params", help="The params file.", show_default=True)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-S",
        metavar="KEY=VALUE",
        help="Override a params.yaml key for this command: -S section.key=value (repeatable).",
    ),
]
RunSetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-S",
        metavar="KEY=VALUE",
        help="Override a param for this run, e.g. -S train.epochs=3 or -S profile=full (repeatable; the same keys "
        "as `dvc exp run -S`).",
    ),
]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", "-p", help="A named set of overrides from params.yaml (smoke, full).")
]
DataOpt = Annotated[
    str | None,
    typer.Option("--data", help="Point the pipeline at another dataset: MedMNIST name, .npz, image folder or CSV."),
]
ModelUriOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="models:/<name>@<alias>, models:/<name>/<version>, or a local model folder."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (complete, never truncated) instead of a table.")]
PreparedOpt = Annotated[Path, typer.Option("--prepared", help="The prepared dataset folder (train/val/test.npz).")]


def load_cli_config(
    params: Path, overrides: list[str] | None, profile: str | None = None, data: str | None = None
) -> PipelineConfig:
    """The one place the CLI reads configuration."""
    from medpipe.config import load_config

    overrides = list(overrides or [])
    if data:
        overrides.append(f"data.source={data}")
    return load_config(params, overrides=overrides, profile=profile)


def print_json(payload: object) -> None:
    """Machine-readable output: plain JSON on stdout, whatever the terminal width."""
    import json

    typer.echo(json.dumps(payload, indent=2, default=str))


def settings() -> Settings:
    """The store locations and secrets of this process (prepared once, at the entry point)."""
    from medpipe.cli.environment import prepare_environment

    return prepare_environment()


def champion_uri(uri: str | None, cfg: PipelineConfig) -> str:
    """The model a serving command uses: the one asked for, else the configured model's champion."""
    return uri or f"models:/{cfg.registry.model_name}@champion"
