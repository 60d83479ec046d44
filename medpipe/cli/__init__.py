"""The ``medpipe`` command line: one module per domain; commands only parse options and call the functions
the flows call.

Heavy libraries (torch, mlflow, prefect, dvc, evidently) are imported inside the commands so that
``medpipe --help`` stays fast.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from medpipe.cli import data, monitor, orchestration, pipeline, registry, serve, stages, train, ui
from medpipe.cli.common import err_console

app = typer.Typer(
    name="medpipe",
    help="MLOps pipeline for medical image classification: data -> training -> registry -> ONNX serving -> drift.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)


def _flags_without_type_tags() -> None:
    """Typer 0.29 prints ``<bool>`` beside every flag; a flag takes no value, so its help shows none. Patches
    Typer's option class for the whole process: :func:`main` calls it, importing this package does not."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else shown(self, ctx)  # type: ignore[method-assign]


@app.callback()
def _entry(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also show library logs (Prefect, Lightning, MLflow, Optuna, DVC) and tracebacks on stderr; "
            "by default they go to <state folder>/logs/medpipe.log.",
        ),
    ] = False,
) -> None:
    from medpipe.cli.logs import configure
    from medpipe.settings import get_settings

    configure(get_settings().home, verbose)


# Listed in workflow order (Typer keeps the order commands are added in).
app.add_typer(pipeline.app)  # run
app.add_typer(data.app, name="data")
app.add_typer(train.app)  # train
app.add_typer(train.hpo_app, name="hpo")
app.add_typer(serve.app)  # deploy, serve, predict, feedback
app.add_typer(registry.app, name="registry")
app.add_typer(monitor.app, name="monitor")
app.add_typer(ui.app, name="ui")  # ui mlflow | prefect | evidently
app.add_typer(orchestration.app)  # schedule (and `server`, the hidden old name of `ui prefect`)
app.add_typer(stages.app, name="stage")  # the DVC stages that are not a flow


def main() -> None:  # pragma: no cover - console entry
    from medpipe.cli.processes import stop_on_signals
    from medpipe.config import ConfigError
    from medpipe.errors import MedpipeError

    stop_on_signals()
    _flags_without_type_tags()
    verbose = any(arg in ("-v", "--verbose") for arg in sys.argv[1:])
    try:
        app()
    except (ConfigError, MedpipeError) as err:  # deterministic: said once, no traceback unless -v
        if verbose:
            import traceback

            traceback.print_exc()
        err_console.print(f"[bold red]error:[/] {err}", soft_wrap=True, highlight=False)
        sys.exit(2)


__all__ = ["app", "main"]
