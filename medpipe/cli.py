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
    import subprocess

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


def _terminate(proc: subprocess.Popen, timeout_s: float) -> None:
    """Stop a server this command started: SIGTERM, then SIGKILL if it is still up after ``timeout_s``."""
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()


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


@data_app.command("pull")
def data_pull() -> None:
    """Fetch the versioned raw and prepared data (data/raw.dvc, dvc.lock) from the DVC remote."""
    from components.data.versioning import data_status as status
    from components.data.versioning import pull
    from medpipe.reporting import print_data_status

    settings = _settings()
    pull(settings)
    print_data_status(console, status(settings))


@data_app.command("push")
def data_push() -> None:
    """Upload the versioned raw and prepared data to the DVC remote."""
    from components.data.versioning import push

    console.print(f"pushed data/raw and data/prepared to {push(_settings())}")


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
    load_cli_config(params, overrides, profile, data)  # fail fast on a bad param, before Prefect starts
    from medpipe.reporting import print_pipeline_summary
    from pipelines.full import pipeline

    overrides = [*(overrides or []), *([f"data.source={data}"] if data else [])]
    summary = pipeline(str(params), profile, overrides)
    print_pipeline_summary(console, summary, settings)


# --- deploy and serving ----------------------------------------------------------------------
ModelUriOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", help="models:/<name>@<alias>, models:/<name>/<version>, or a local model folder."),
]


def _model_uri(uri: str | None, cfg: PipelineConfig) -> str:
    return uri or f"models:/{cfg.registry.model_name}@champion"


@app.command("deploy")
def deploy(
    model: Annotated[str, typer.Argument(help="A trained model folder, or a registered models:/<name>/<version>.")],
    prepared: Annotated[Path, typer.Option(help="Prepared dataset whose test split the parity gate uses.")] = Path(
        "data/prepared"
    ),
    out: Annotated[Path | None, typer.Option(help="Where to write model.onnx (default: inside the folder).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
    profile: ProfileOpt = None,
    flow: Annotated[
        bool,
        typer.Option(
            "--flow",
            help="Run the deployment flow (Prefect) for a registered version: export + parity gate, then make it "
            "champion (a manual promotion: the promotion gate is not re-run) and tell running servers to reload. "
            "MODEL: models:/<name>/<version> or a version number.",
        ),
    ] = False,
) -> None:
    """Export a model to ONNX and run the parity gate (and optional quantisation) on the whole test split.

    With --flow, a registered version that passes becomes the champion and running servers reload it."""
    from components.deploy.stage import deploy_model, deploy_registered
    from components.errors import GateError
    from medpipe.reporting import print_deploy_result

    cfg = load_cli_config(params, overrides, profile)
    if flow:
        from medpipe.reporting import print_deployment_summary
        from pipelines.deployment import deployment_flow

        _settings()
        version = model.rsplit("/", 1)[-1] if model.startswith("models:/") else model
        if not version.isdigit():
            raise GateError(f"--flow deploys a registered version: got {model!r}; pass models:/<name>/<version> or N")
        summary = deployment_flow(str(prepared), version, str(params), profile, overrides)
        print_deployment_summary(console, summary)
        return
    if model.startswith("models:/"):
        result = deploy_registered(model, prepared, cfg.export, _settings())
    else:
        folder = Path(model)
        result = deploy_model(folder, out or folder / "model.onnx", prepared, cfg.export)
        result.report.to_json(result.onnx_path.parent / "parity.json")
    print_deploy_result(console, result)
    if not result.passed:
        raise GateError(f"parity gate failed for {model}: {result.report.reason}")


@app.command("serve")
def serve(
    model: ModelUriOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default serving.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default serving.port).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Serve the champion over HTTP (FastAPI + ONNX Runtime), with hot reload and micro-batching."""
    import uvicorn

    from components.serving.app import create_app

    cfg = load_cli_config(params, overrides)
    settings = _settings()
    host, port = host or cfg.serving.host, port or cfg.serving.port
    if host not in ("127.0.0.1", "localhost", "::1") and not cfg.serving.require_api_key:
        err_console.print(f"[yellow]warning:[/] serving on {host} without API keys (-S serving.require_api_key=true)")
    uri = _model_uri(model, cfg)
    console.print(f"serving [bold]{uri}[/] on http://{host}:{port} (docs: /docs); log: {settings.inference_log}")
    uvicorn.run(create_app(settings, cfg.serving, cfg.export, uri), host=host, port=port, log_level="info")


@app.command("predict")
def predict(
    folder: Annotated[Path, typer.Argument(help="Folder of PNG/JPEG/TIFF/BMP/.npy images (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write, one row per file.")] = Path("results.csv"),
    model: ModelUriOpt = None,
    log: Annotated[bool, typer.Option(help="Append the predictions to the inference log.")] = True,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Score a folder of images offline through the same ONNX session the server uses."""
    from components.serving.predict import predict_folder
    from medpipe.reporting import print_batch_prediction

    cfg = load_cli_config(params, overrides)
    result = predict_folder(folder, out, _model_uri(model, cfg), cfg.export, cfg.serving, _settings(), log=log)
    print_batch_prediction(console, result)


@app.command("feedback")
def feedback(
    request_id: Annotated[str, typer.Argument(help="The request id the server (or `medpipe predict`) returned.")],
    label: Annotated[str, typer.Argument(help="The true class: a class name or its index.")],
    index: Annotated[int | None, typer.Option(help="Only this image of the request.")] = None,
) -> None:
    """Record the ground-truth label of a served prediction in the inference log."""
    from components.serving.inference_log import InferenceLog

    settings = _settings()
    n = InferenceLog(settings.inference_log).add_feedback(request_id, label, index)
    console.print(f"label [bold]{label}[/] recorded on {n} prediction(s) of request {request_id}")


# --- registry (MLflow model registry) ---------------------------------------------------------
@registry_app.command("list")
def registry_list(params: ParamsOpt = Path("params.yaml"), overrides: SetOpt = None) -> None:
    """List the registered versions: aliases, gate decision, primary metric, data version."""
    from components.registry.aliases import list_versions
    from medpipe.reporting import print_model_versions

    cfg = load_cli_config(params, overrides)
    rows = list_versions(_settings(), cfg)
    print_model_versions(console, cfg.registry.model_name, rows, cfg.registry.primary_metric)


@registry_app.command("promote")
def registry_promote(
    version: Annotated[str, typer.Argument(help="The version to make champion.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required; written to the audit log).")],
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Manual override: make VERSION the champion without the gate (audited)."""
    from components.registry.aliases import promote
    from medpipe.reporting import print_alias_event

    cfg = load_cli_config(params, overrides)
    print_alias_event(console, promote(version, reason, _settings(), cfg, actor="cli"))


@registry_app.command("rollback")
def registry_rollback(
    reason: Annotated[str | None, typer.Option("--reason", help="Why (written to the audit log).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Move the champion back to the previous champion (from the audit log)."""
    from components.registry.aliases import rollback
    from medpipe.reporting import print_alias_event

    cfg = load_cli_config(params, overrides)
    print_alias_event(console, rollback(_settings(), cfg, actor="cli", reason=reason))


@registry_app.command("history")
def registry_history(
    alias: Annotated[str | None, typer.Option("--alias", help="Only this alias (champion, challenger).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Every alias move of the configured model: who, which flow run, from, to, why, when."""
    from components.registry.aliases import history
    from medpipe.reporting import print_audit_history

    cfg = load_cli_config(params, overrides)
    print_audit_history(console, history(_settings(), cfg, alias=alias))


@registry_app.command("register")
def registry_register(
    model_dir: Annotated[Path, typer.Argument(help="A trained model folder (model.pt, preprocessing.json, ...).")],
    onnx: Annotated[Path | None, typer.Option("--onnx", help="The exported ONNX file to register with it.")] = None,
    run_id: Annotated[str | None, typer.Option("--run-id", help="The training run (default: a new run).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Register a model folder as a new @challenger (e.g. after the tracking server was unreachable)."""
    from components.registry.register import register_model
    from medpipe.reporting import print_registered

    cfg = load_cli_config(params, overrides)
    version = register_model(model_dir, onnx, cfg, _settings(), run_id=run_id, data_version=None, metrics={})
    print_registered(console, version)


@registry_app.command("evaluate")
def registry_evaluate(
    version: Annotated[str, typer.Argument(help="The version to gate (usually the @challenger).")],
    prepared: Annotated[Path, typer.Option("--prepared", help="The prepared dataset folder; its test split is used.")],
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Run the promotion gate: VERSION vs the champion on the same test set; promote if every check passes."""
    from components.registry.gate import evaluate_and_promote
    from medpipe.reporting import print_gate_decision

    cfg = load_cli_config(params, overrides)
    print_gate_decision(console, evaluate_and_promote(version, prepared, cfg, _settings(), actor="cli"))


# --- MLflow UI ---------------------------------------------------------------------------------
@app.command("ui")
def ui(
    port: Annotated[int | None, typer.Option("--port", help="Port (default: ui.mlflow_port from params).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Start the MLflow UI on the configured tracking store and print its URL (Ctrl-C stops it)."""
    from components.registry.ui import plan_ui, start_ui, stop_ui, wait_until_up

    cfg = load_cli_config(params, overrides)
    settings = _settings()
    plan = plan_ui(settings, cfg.ui, port=port)
    if plan.command is None:
        console.print(f"the tracking store is a server: open [bold]{plan.url}[/]")
        return
    proc = start_ui(plan)
    try:
        if not wait_until_up(plan.url, timeout_s=120, proc=proc):
            err_console.print(f"[bold red]error:[/] the MLflow UI did not start on {plan.url} (port in use? --port)")
            raise typer.Exit(2)
        console.print(f"MLflow UI on [bold]{plan.url}[/] (store {settings.tracking_uri}); Ctrl-C stops it")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_ui(proc)


# --- training ----------------------------------------------------------------------------------
PreparedOpt = Annotated[Path, typer.Option("--prepared", help="The prepared dataset folder (train/val/test.npz).")]


@app.command("train")
def train(
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
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
    """Run the training flow (Prefect): search -> final training -> ONNX export + parity -> drift reference ->
    register as challenger -> promotion gate -> model card. Visible in Prefect when PREFECT_API_URL is set."""
    import os

    settings = _settings()
    overrides = [*(overrides or []), *([] if search else ["search.enabled=false"])]
    cfg = load_cli_config(params, overrides, profile)  # fail fast on a bad param, before Prefect starts
    if direct or int(os.environ.get("WORLD_SIZE", "1")) > 1:  # DDP ranks must not each start a flow run
        from components.data.dataset import load_prepared
        from components.training.search import train_best
        from components.training.train import is_rank_zero
        from medpipe.reporting import print_train_result

        result = train_best(cfg, load_prepared(prepared or Path("data/prepared")), settings, out_dir=out)
        if is_rank_zero():  # under torchrun / DDP every rank runs this command; one reports
            print_train_result(console, result)
        return
    from components.data.versioning import data_version
    from medpipe.reporting import print_training_summary
    from pipelines.training import training_flow

    version = None
    if prepared is not None and prepared.resolve() == (settings.project_dir / "data" / "prepared").resolve():
        version = data_version(settings.project_dir)  # the DVC version of the project's own prepared data
    summary = training_flow(
        str(params),
        profile,
        overrides,
        reason=reason,
        prepared_path=str(prepared) if prepared else None,
        data_version=version,
    )
    print_training_summary(console, summary)


@hpo_app.command("worker")
def hpo_worker(
    study: Annotated[str, typer.Option("--study", help="The Optuna study to join (created if missing).")],
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
    profile: ProfileOpt = None,
    prepared: PreparedOpt = Path("data/prepared"),
) -> None:
    """Join a study and run trials until it holds search.n_trials finished trials (run several for scale-out)."""
    settings = _settings()
    cfg = load_cli_config(params, overrides, profile)
    from components.data.dataset import load_prepared
    from components.training.search import run_worker
    from medpipe.reporting import print_search_result

    print_search_result(console, run_worker(cfg, load_prepared(prepared), settings, study))


# --- drift monitoring --------------------------------------------------------------------------
monitor_app = typer.Typer(
    help="Drift check of the champion: served images (inference log) or a folder vs its reference profile.",
    invoke_without_command=True,
)
app.add_typer(monitor_app, name="monitor")


@monitor_app.callback()
def monitor(
    ctx: typer.Context,
    images: Annotated[
        Path | None, typer.Option("--images", help="Check a folder of image files instead of the inference log.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the machine-readable result.")] = False,
    since: Annotated[
        str | None, typer.Option("--since", help="Window start (ISO time); default: now - monitoring.window_hours.")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="Window end (ISO time); default: now.")] = None,
    last: Annotated[int | None, typer.Option("--last", help="Only the last N logged predictions.")] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model URI or ONNX folder (default: models:/<name>@champion).")
    ] = None,
    reference: Annotated[
        Path | None, typer.Option("--reference", help="Reference profile folder (default: the model's own).")
    ] = None,
    alerts: Annotated[bool, typer.Option(help="Send alerts through the configured channels.")] = True,
    fail_on_drift: Annotated[bool, typer.Option(help="Exit 1 when drift is detected (CI).")] = False,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Run one drift check: verdict, signals vs thresholds, estimated accuracy; reports to HTML/JSON, the
    Evidently workspace and MLflow; alerts on a new drift condition."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import datetime

    from components.tracking import experiment_name
    from medpipe.reporting import print_drift_summary
    from monitoring.alerts import send_alerts
    from monitoring.check import current_window, load_champion
    from monitoring.drift import compute_drift
    from monitoring.outputs import write_outputs

    settings = _settings()
    cfg = load_cli_config(params, overrides)
    champion = load_champion(cfg, settings, model, reference)
    window = current_window(
        champion,
        cfg,
        settings,
        images_dir=images,
        since=datetime.fromisoformat(since) if since else None,
        until=datetime.fromisoformat(until) if until else None,
        last=last,
    )
    summary = compute_drift(champion.reference, window, cfg.monitoring, model_version=champion.version)
    write_outputs(summary, settings, cfg.project.name, experiment_name(cfg, "monitoring"), champion.version)
    outcome = send_alerts(summary, cfg.alerts, settings) if alerts else None
    if as_json:
        typer.echo(summary.to_json())
    else:
        print_drift_summary(console, summary, outcome)
    if fail_on_drift and summary.drift_detected:
        raise typer.Exit(1)


@monitor_app.command("ui")
def monitor_ui(
    port: Annotated[int | None, typer.Option("--port", help="Port (default: ui.evidently_port).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Start the Evidently UI on the local workspace (the history of drift checks); Ctrl-C stops it."""
    import subprocess

    cfg = load_cli_config(params, overrides)
    settings = _settings()
    workspace = settings.evidently_workspace
    workspace.mkdir(parents=True, exist_ok=True)
    port = port or cfg.ui.evidently_port
    evidently = Path(sys.executable).with_name("evidently")
    cmd = [str(evidently) if evidently.exists() else "evidently", "ui", "--workspace", str(workspace)]
    cmd += ["--host", cfg.ui.host, "--port", str(port)]
    console.print(f"Evidently UI on [bold]http://{cfg.ui.host}:{port}[/] (workspace {workspace}); Ctrl-C stops it")
    proc = subprocess.Popen(cmd)
    try:
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _terminate(proc, timeout_s=10)


# --- orchestration: schedules and a local Prefect server ---------------------------------------
def _prefect_api_url() -> str | None:
    """The Prefect server this process talks to: PREFECT_API_URL (env or the Prefect profile), else None."""
    import os

    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import get_current_settings

    return get_current_settings().api.url


@app.command("schedule")
def schedule(
    list_only: Annotated[bool, typer.Option("--list", help="Only show each deployment's next run times.")] = False,
    count: Annotated[int, typer.Option("--count", "-n", help="How many next runs to show per deployment.")] = 3,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
    profile: ProfileOpt = None,
) -> None:
    """Serve every deployment from this process (Ctrl-C stops it): nightly monitoring, weekly training, and
    training on each `medpipe.drift.detected` event. Crons come from params.yaml `schedule:`.

    Needs a Prefect server: start one with `medpipe server` and export the PREFECT_API_URL it prints."""
    cfg = load_cli_config(params, overrides, profile)
    _settings()
    from pipelines.schedule import next_runs, planned

    if list_only:
        from medpipe.reporting import print_next_runs

        print_next_runs(console, planned(cfg), next_runs(cfg, n=count))
        return
    if not _prefect_api_url():
        err_console.print(
            "[bold red]error:[/] schedules and event triggers need a Prefect server, and PREFECT_API_URL is not set.\n"
            "Start one in another terminal with `medpipe server`, then `export PREFECT_API_URL=<the URL it prints>` "
            "and run `medpipe schedule` again (or point PREFECT_API_URL at your team's server)."
        )
        raise typer.Exit(2)
    from pipelines.schedule import serve_all

    console.print(f"serving {', '.join(d.name for d in planned(cfg))} against {_prefect_api_url()} (Ctrl-C stops)")
    serve_all(cfg, str(params), profile, overrides)


@app.command("server")
def server(
    port: Annotated[int, typer.Option("--port", help="Port of the Prefect API and UI.")] = 4200,
    host: Annotated[str, typer.Option("--host", help="Bind address.")] = "127.0.0.1",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server to answer.")] = 180.0,
) -> None:
    """Start a local Prefect server (SQLite under the state folder, analytics off) for `medpipe schedule` and the
    Prefect UI; prints the PREFECT_API_URL to export. Ctrl-C stops it."""
    import os
    import subprocess
    import time

    import httpx

    settings = _settings()
    prefect_home = settings.prefect_home
    prefect_home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to another server
    exe = Path(sys.executable).with_name("prefect")
    cmd = [str(exe) if exe.exists() else "prefect", "server", "start", "--host", host, "--port", str(port)]
    url = f"http://{host}:{port}"
    proc = subprocess.Popen(cmd, env=env)
    try:
        deadline = time.monotonic() + timeout
        with console.status(f"starting the Prefect server on {url} (PREFECT_HOME={prefect_home})"):
            while True:
                if proc.poll() is not None:
                    err_console.print(
                        f"[bold red]error:[/] `prefect server start` exited ({proc.returncode}); "
                        f"is port {port} in use? try --port"
                    )
                    raise typer.Exit(2)
                try:
                    if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    err_console.print(
                        f"[bold red]error:[/] the Prefect server did not answer on {url} in {timeout:.0f} s"
                    )
                    raise typer.Exit(2)
                time.sleep(1)
        console.print(
            f"Prefect server up: UI [bold]{url}[/]\nin other terminals: [bold]export PREFECT_API_URL={url}/api[/] "
            "(then `medpipe schedule`, `medpipe run`, ...); Ctrl-C stops it"
        )
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _terminate(proc, timeout_s=20)


def main() -> None:  # pragma: no cover - console entry
    from components.errors import MedpipeError
    from medpipe.config import ConfigError

    try:
        app()
    except (ConfigError, MedpipeError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        sys.exit(2)
