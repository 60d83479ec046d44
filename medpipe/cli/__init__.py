"""The ``medpipe`` command line: one module per domain; commands only parse options and call the functions
the flows call.

Heavy libraries (torch, mlflow, prefect, dvc, evidently) are imported inside the commands so that
``medpipe --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from medpipe.cli import data, monitor, orchestration, pipeline, registry, serve, train
from medpipe.cli.common import err_console

app = typer.Typer(
    name="medpipe",
    help="MLOps pipeline for medical image classification: data -> training -> registry -> ONNX serving -> drift.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(data.app, name="data")
app.add_typer(registry.app, name="registry")
app.add_typer(train.hpo_app, name="hpo")
app.add_typer(pipeline.app)
app.add_typer(serve.app)
app.add_typer(registry.ui_app)
app.add_typer(train.app)
app.add_typer(monitor.app, name="monitor")
app.add_typer(orchestration.app)


def main() -> None:  # pragma: no cover - console entry
    from components.errors import MedpipeError
    from medpipe.cli.processes import stop_on_sigterm
    from medpipe.config import ConfigError

    stop_on_sigterm()
    try:
        app()
    except (ConfigError, MedpipeError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        sys.exit(2)


__all__ = ["app", "main"]
