"""``medpipe ui mlflow | prefect | evidently``: the three web UIs, each named for the tool it opens."""

from __future__ import annotations

import typer

from medpipe.cli.monitor import evidently_ui
from medpipe.cli.orchestration import prefect_ui
from medpipe.cli.registry import mlflow_ui

app = typer.Typer(
    help="Open a web UI: MLflow (runs, models, aliases), Prefect (flow runs, schedules), Evidently (drift history).",
    no_args_is_help=True,
)
app.command("mlflow")(mlflow_ui)
app.command("prefect")(prefect_ui)
app.command("evidently")(evidently_ui)
