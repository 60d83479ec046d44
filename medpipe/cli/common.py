"""What every command module shares: the consoles, the common options and the one config loader.

Only typer and rich are imported here, so that ``medpipe --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from medpipe.config import PipelineConfig
    from medpipe.settings import Settings

console = Console()
err_console = Console(stderr=True)

ParamsOpt = Annotated[Path, typer.Option("--params", help="The params file.", show_default=True)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-S", help="Override one param for this run, e.g. -S train.epochs=3 (repeatable)."),
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


def settings() -> Settings:
    """The store locations and secrets of this process (prepared once, at the entry point)."""
    from medpipe.settings import prepare_environment

    return prepare_environment()


def champion_uri(uri: str | None, cfg: PipelineConfig) -> str:
    """The model a serving command uses: the one asked for, else the configured model's champion."""
    return uri or f"models:/{cfg.registry.model_name}@champion"
