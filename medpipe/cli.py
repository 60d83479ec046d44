"""The ``medpipe`` command line. Commands only parse options and call the functions the flows call.

Heavy libraries (torch, mlflow, prefect, dvc, evidently) are imported inside the commands so that
``medpipe --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from medpipe.config import PipelineConfig

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="medpipe",
    help="MLOps pipeline for medical image classification: data -> training -> registry -> ONNX serving -> drift.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
data_app = typer.Typer(help="Ingest, validate, prepare and version datasets (DVC).", no_args_is_help=True)
registry_app = typer.Typer(help="Inspect and move model aliases in the MLflow registry.", no_args_is_help=True)
hpo_app = typer.Typer(help="Hyperparameter search workers (Optuna).", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(registry_app, name="registry")
app.add_typer(hpo_app, name="hpo")

# --- shared options --------------------------------------------------------------------------
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


def load_cli_config(
    params: Path, overrides: list[str] | None, profile: str | None = None, data: str | None = None
) -> PipelineConfig:
    """The one place the CLI reads configuration."""
    from medpipe.config import load_config

    overrides = list(overrides or [])
    if data:
        overrides.append(f"data.source={data}")
    return load_config(params, overrides=overrides, profile=profile)


def _settings():
    from medpipe.settings import prepare_environment

    return prepare_environment()


# --- data ------------------------------------------------------------------------------------
@data_app.command("ingest")
def data_ingest(
    source: Annotated[str | None, typer.Argument(help="Dataset (default: data.source from params).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
    push: Annotated[bool, typer.Option(help="Push the new version to the DVC remote.")] = True,
) -> None:
    """Validate a dataset, copy it into the DVC-tracked workspace, prepare it and version it."""
    from components.data.versioning import ingest_and_version
    from medpipe.reporting import print_data_summary

    cfg = load_cli_config(params, overrides, data=source)
    result = ingest_and_version(cfg.data, _settings(), push=push)
    print_data_summary(console, result)


@data_app.command("status")
def data_status(params: ParamsOpt = Path("params.yaml")) -> None:
    """Show the current data version, class counts per split and whether the workspace changed."""
    from components.data.versioning import data_status as status
    from medpipe.reporting import print_data_status

    print_data_status(console, status(_settings()))


# --- the whole pipeline ----------------------------------------------------------------------
@app.command("run")
def run(
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
    profile: ProfileOpt = None,
    data: DataOpt = None,
) -> None:
    """Run the whole pipeline as a Prefect flow (ephemeral Prefect unless PREFECT_API_URL is set)."""
    settings = _settings()
    cfg = load_cli_config(params, overrides, profile, data)
    from medpipe.reporting import print_pipeline_summary
    from pipelines.full import pipeline

    summary = pipeline(cfg.model_dump(mode="json"))
    print_pipeline_summary(console, summary, settings)


def main() -> None:  # pragma: no cover - console entry
    from components.errors import MedpipeError
    from medpipe.config import ConfigError

    try:
        app()
    except (ConfigError, MedpipeError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        sys.exit(2)
