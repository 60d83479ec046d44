"""``medpipe train`` (the training flow, or a direct search + train) and ``medpipe hpo worker``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medpipe.cli.common import (
    ParamsOpt,
    PreparedOpt,
    ProfileOpt,
    RunSetOpt,
    console,
    load_cli_config,
    settings,
)

app = typer.Typer()
hpo_app = typer.Typer(help="Hyperparameter search workers (Optuna).", no_args_is_help=True)


@app.command("train")
def train(
    params: ParamsOpt = Path("params.yaml"),
    overrides: RunSetOpt = None,
    profile: ProfileOpt = None,
    prepared: Annotated[
        Path | None,
        typer.Option(
            "--prepared", help="Train on this prepared folder (default: the data flow versions the data first)."
        ),
    ] = None,
    search: Annotated[bool, typer.Option(help="Run the Optuna search first (default: search.enabled).")] = True,
    reason: Annotated[str, typer.Option(help="Why this run (shown in Prefect and the audit log).")] = "manual",
    direct: Annotated[
        bool,
        typer.Option(
            "--direct",
            help="Only search + train into --out, without Prefect, registration or gate "
            "(automatic under torchrun: WORLD_SIZE set).",
        ),
    ] = False,
    out: Annotated[Path, typer.Option("--out", help="--direct only: where the model folder is written.")] = Path(
        "data/models/current"
    ),
) -> None:
    """Run the training flow (Prefect) on the prepared data: search, train, export, register, gate.

    search -> final training -> ONNX export + parity -> drift reference -> register as challenger ->
    promotion gate -> model card. Visible in Prefect when PREFECT_API_URL is set."""
    from components.dvc_pipeline import experiment_overrides
    from components.training.distributed import launched_by_torchrun

    current = settings()
    # under `dvc exp run -S k=v` the experiment's params.yaml changes win over the profile, as -S does here
    overrides = [*experiment_overrides(params), *(overrides or []), *([] if search else ["search.enabled=false"])]
    cfg = load_cli_config(params, overrides, profile)  # fail fast on a bad param, before Prefect starts
    if prepared is None:  # the data flow runs first: a wrong data.source fails here, not in a flow
        from components.data.sources import resolve_source

        resolve_source(cfg.data.source, current)
    from medpipe.cli.logs import route_training_libraries

    route_training_libraries()
    if direct or launched_by_torchrun():  # DDP ranks must not each start a flow run
        from components.data.dataset import load_prepared
        from components.training.distributed import is_rank_zero
        from components.training.final import train_best
        from medpipe.cli.reporting import print_train_result

        result = train_best(cfg.for_training(), load_prepared(prepared or Path("data/prepared")), current, out_dir=out)
        if is_rank_zero():  # under torchrun / DDP every rank runs this command; one reports
            print_train_result(console, result)
        return
    from components.data.versioning import data_version
    from medpipe.cli.reporting import print_training_summary
    from pipelines.training import training_flow

    version = None
    if prepared is not None and prepared.resolve() == (current.project_dir / "data" / "prepared").resolve():
        version = data_version(current.project_dir)  # the DVC version of the project's own prepared data
    summary = training_flow(
        str(params),
        profile,
        overrides,
        reason=reason,
        prepared_path=str(prepared) if prepared else None,
        data_version=version,
        config=cfg,
    )
    print_training_summary(console, summary)


@hpo_app.command("worker")
def hpo_worker(
    study: Annotated[str, typer.Option("--study", help="The Optuna study to join (created if missing).")],
    params: ParamsOpt = Path("params.yaml"),
    overrides: RunSetOpt = None,
    profile: ProfileOpt = None,
    prepared: PreparedOpt = Path("data/prepared"),
) -> None:
    """Join a study and run trials until it holds search.n_trials finished trials (run several for scale-out)."""
    current = settings()
    cfg = load_cli_config(params, overrides, profile)
    from components.data.dataset import load_prepared
    from components.training.search import run_worker
    from medpipe.cli.logs import route_training_libraries

    route_training_libraries()
    from medpipe.cli.reporting import print_search_result

    print_search_result(console, run_worker(cfg.for_training(), load_prepared(prepared), current, study))
