"""``medpipe deploy | serve | predict | feedback``: ONNX export and the ONNX model in use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from medpipe.cli.common import (
    ModelUriOpt,
    ParamsOpt,
    ProfileOpt,
    SetOpt,
    champion_uri,
    console,
    err_console,
    load_cli_config,
    settings,
)

if TYPE_CHECKING:
    from medpipe.config import PipelineConfig
    from medpipe.settings import Settings

app = typer.Typer()


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
    from components.deploy.stage import deploy_model
    from components.registry.redeploy import deploy_registered
    from medpipe.cli.reporting import print_deploy_result
    from medpipe.errors import GateError

    cfg = load_cli_config(params, overrides, profile)
    if flow:
        from medpipe.cli.reporting import print_deployment_summary
        from pipelines.deployment import deployment_flow

        settings()
        version = model.rsplit("/", 1)[-1] if model.startswith("models:/") else model
        if not version.isdigit():
            raise GateError(f"--flow deploys a registered version: got {model!r}; pass models:/<name>/<version> or N")
        summary = deployment_flow(str(prepared), version, str(params), profile, overrides, config=cfg)
        print_deployment_summary(console, summary)
        return
    if model.startswith("models:/"):
        result = deploy_registered(model, prepared, cfg.export, settings())
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
    workers: Annotated[int | None, typer.Option(help="Worker processes (default serving.workers).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Serve the champion over HTTP (FastAPI + ONNX Runtime), with hot reload and micro-batching."""
    import os

    from components.registry.store import parse_registry_uri
    from components.serving.auth import api_keys, check_bind, is_loopback
    from components.tracking import require_existing_store

    # Every refusal (a bad param, contradicting keys, an open public bind, a missing store) comes first, with
    # light imports only: the server's own (ONNX Runtime, torch, MLflow, FastAPI) cost ~12 s of CPU here.
    cfg = load_cli_config(params, overrides)
    current = settings()
    host, port = host or cfg.serving.host, port or cfg.serving.port
    workers = workers or cfg.serving.workers
    keys = api_keys(cfg.serving, current)
    check_bind(host, keys, cfg.serving)
    uri = champion_uri(model, cfg)
    if parse_registry_uri(uri) is not None:
        require_existing_store(current)  # MLflow would silently create an empty store and serve nothing
    if not keys and not is_loopback(host):  # allowed by serving.allow_unauthenticated
        err_console.print(f"[yellow]warning:[/] no API keys: anyone who reaches {host}:{port} can call the API")
    # prometheus-client goes multiprocess when PROMETHEUS_MULTIPROC_DIR is present at all: set but empty, every
    # process wrote counter_<pid>.db / histogram_<pid>.db into the working directory (the checkout root, from the
    # benchmark). Empty means unset here; with --workers N the CLI sets its own folder below.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR", "x"):
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR")
    _say_if_nothing_to_serve(uri, cfg, current, params, bool(overrides))
    import shutil

    import uvicorn

    from components.serving.app import create_app

    console.print(f"serving [bold]{uri}[/] on http://{host}:{port} (docs: /docs); log: {current.inference_log}")
    folder = current.home / "serve" / str(port)  # what the workers share: explain limits, spec, metrics
    shutil.rmtree(folder / "limits", ignore_errors=True)  # a restart starts with fresh explain limits
    if workers == 1:
        app = create_app(current, cfg.serving, cfg.export, uri, shared_dir=folder)
        uvicorn.run(app, host=host, port=port, log_level="info")
        return
    _serve_workers(folder, cfg, uri, host, port, workers)


def _say_if_nothing_to_serve(uri: str, cfg: PipelineConfig, current: Settings, params: Path, overridden: bool) -> None:
    """When ``uri`` points at nothing now (no champion yet), say why and what to run, in the terminal: the server
    itself only logs it and answers 503 on /v1/ready until a model appears. One registry lookup."""
    from components.registry.aliases import alias_gap
    from components.registry.store import parse_registry_uri
    from components.serving.model_source import model_marker
    from medpipe.cli.next_steps import model_args, nothing_to_serve_lines

    parsed = parse_registry_uri(uri)
    gap, args = None, ""
    try:
        if parsed is not None and parsed[1] is not None:  # models:/name@alias: what the registry holds instead
            if (gap := alias_gap(current, parsed[0], parsed[1])) is None:
                return
            plain = load_cli_config(params, None) if overridden else cfg  # what `medpipe registry promote` picks
            args = model_args(params, parsed[0], plain.registry.model_name)
        else:
            model_marker(uri, current)  # the server's own "what is there now?" probe
            return
        error = ""
    except Exception as err:  # noqa: BLE001 - said here; the server starts anyway and keeps looking
        error = str(err)
    for line in nothing_to_serve_lines(error, gap, args, cfg.serving.reload_interval_s):
        style = "yellow" if line.startswith("nothing") else None
        err_console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)  # copy-pasteable


def _serve_workers(folder: Path, cfg: PipelineConfig, uri: str, host: str, port: int, workers: int) -> None:
    """``workers`` uvicorn processes, each building the app from one spec file; Prometheus in multiprocess mode."""
    import os
    import shutil

    import uvicorn

    from components.serving.app import SPEC_ENV, write_spec
    from components.serving.telemetry import MULTIPROC_ENV

    metrics_dir = folder / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)  # samples of an earlier run would be added in
    metrics_dir.mkdir(parents=True)
    os.environ[SPEC_ENV] = str(write_spec(folder / "spec.json", cfg.serving, cfg.export, uri))
    os.environ[MULTIPROC_ENV] = str(metrics_dir)  # read by the workers, which start after this
    console.print(f"{workers} workers; Prometheus multiprocess samples in {metrics_dir}")
    uvicorn.run(
        "components.serving.app:create_app_from_spec", factory=True, host=host, port=port, workers=workers,
        log_level="info",
    )  # fmt: skip


@app.command("predict")
def predict(
    folder: Annotated[Path, typer.Argument(help="Folder of PNG/JPEG/TIFF/BMP/.npy images (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write, one row per file.")] = Path("results.csv"),
    model: ModelUriOpt = None,
    log: Annotated[bool, typer.Option(help="Append the predictions to the inference log.")] = True,
    explain: Annotated[
        bool, typer.Option("--explain", help="Also write each image's Grad-CAM overlay (PNG) and raw map (.npy).")
    ] = False,
    explain_dir: Annotated[
        Path | None, typer.Option(help="Where --explain writes (default: <out stem>_explain/ next to the CSV).")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
    overrides: SetOpt = None,
) -> None:
    """Score a folder of images offline through the same ONNX session the server uses."""
    from components.serving.predict import predict_folder
    from medpipe.cli.reporting import print_batch_prediction

    cfg = load_cli_config(params, overrides)
    where = (explain_dir or out.with_name(f"{out.stem}_explain")) if explain or explain_dir else None
    result = predict_folder(
        folder, out, champion_uri(model, cfg), cfg.export, cfg.serving, settings(), log=log, explain_dir=where
    )
    print_batch_prediction(console, result)


@app.command("feedback")
def feedback(
    request_id: Annotated[str, typer.Argument(help="The request id the server (or `medpipe predict`) returned.")],
    label: Annotated[str, typer.Argument(help="The true class: a class name or its index.")],
    index: Annotated[int | None, typer.Option(help="Only this image of the request.")] = None,
) -> None:
    """Record the ground-truth label of a served prediction in the inference log."""
    from components.serving.inference_log import InferenceLog

    n = InferenceLog(settings().inference_log).add_feedback(request_id, label, index)
    console.print(f"label [bold]{label}[/] recorded on {n} prediction(s) of request {request_id}")
