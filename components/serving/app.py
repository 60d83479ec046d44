"""The prediction server: ``create_app(settings, cfg, export_cfg, model_uri)`` builds the FastAPI app.

The model loads in ``lifespan`` (not at import); a background task polls the registry every
``serving.reload_interval_s`` and swaps to a new champion atomically. The routes live in
:mod:`components.serving.routes`; they reach the state through the dependencies in :mod:`deps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from components.serving.auth import api_keys
from components.serving.batcher import MicroBatcher
from components.serving.canary import Splitter, challenger_uri
from components.serving.errors import install_error_handlers
from components.serving.explain_limits import ExplainLimits
from components.serving.inference_log import InferenceLog
from components.serving.log_writer import BufferedLogWriter
from components.serving.middleware import BodyLimit, RequestContext
from components.serving.model_source import parse_registry_uri
from components.serving.routes import explain, metrics, v1, v2
from components.serving.state import ServingState
from components.serving.telemetry import RequestMetrics, ServingMetrics
from components.tracking import require_existing_store
from medpipe.config import ExportConfig, ServingConfig
from medpipe.settings import Settings

log = logging.getLogger("medpipe.serving")


async def _poll(state: ServingState) -> None:
    while True:
        await asyncio.sleep(state.cfg.reload_interval_s)
        with contextlib.suppress(Exception):  # reload() records and logs the error; keep serving the old model
            await state.reload()
        await asyncio.to_thread(state.log_writer.flush)  # an idle server recovers from a log outage too


def create_app(
    settings: Settings, cfg: ServingConfig, export_cfg: ExportConfig, model_uri: str, shared_dir: Path | None = None
) -> FastAPI:
    """The serving app for ``model_uri`` (``models:/name@champion`` or a local model folder).

    ``shared_dir``: a folder every worker of one ``medpipe serve`` shares, where the explain limits
    (``serving.explain_rate_per_minute``, ``serving.explain_concurrency``) are counted across the workers;
    None: a temporary folder of this process's own (one worker).
    """
    keys = api_keys(cfg, settings)
    if parse_registry_uri(model_uri) is not None:
        require_existing_store(settings)  # refuse to start on a store MLflow would silently create empty

    telemetry = ServingMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_dir = tempfile.TemporaryDirectory(prefix="medpipe-serve-") if shared_dir is None else None
        limits_dir = Path(own_dir.name) if own_dir is not None else Path(shared_dir) / "limits"
        batcher = MicroBatcher(cfg.max_batch, cfg.max_wait_ms, on_batch=telemetry.observe_batch)
        await batcher.start()
        inference_log = InferenceLog(settings.inference_log, keep_open=True)
        state = ServingState(
            settings=settings,
            cfg=cfg,
            export_cfg=export_cfg,
            model_uri=model_uri,
            batcher=batcher,
            inference_log=inference_log,
            log_writer=BufferedLogWriter(inference_log, cfg.log_buffer_rows, telemetry),
            api_keys=keys,
            metrics=telemetry,
            explain_limits=ExplainLimits(limits_dir, cfg),
        )
        if cfg.canary is not None:
            state.challenger_uri = challenger_uri(model_uri, cfg.canary)
            state.splitter = Splitter(cfg.canary.share)
        app.state.serving = state
        try:
            await state.reload(force=True)
        except Exception as err:  # noqa: BLE001 - stay up, not ready; the poller retries
            log.error("model %s not loaded at start: %s", model_uri, err)
        poller = asyncio.create_task(_poll(state), name="model-reload")
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await batcher.stop()
            if not await asyncio.to_thread(state.log_writer.flush):
                log.error(
                    "%d predictions could not be written to the inference log %s before shutdown and are lost: %s",
                    state.log_writer.pending, inference_log.path, state.log_writer.error,
                )  # fmt: skip
            inference_log.close()
            telemetry.process_exited()
            if own_dir is not None:
                own_dir.cleanup()

    app = FastAPIOffline(  # /docs and /redoc with their assets served from the package: they work offline
        title="medpipe prediction API",
        version="1",
        description="Medical image classification with the registered champion model (ONNX Runtime).",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=cfg.max_request_bytes)
    app.add_middleware(RequestContext)
    app.add_middleware(RequestMetrics, metrics=telemetry)  # outermost: counts the 413s of BodyLimit too
    install_error_handlers(app)
    app.include_router(v1.router)
    app.include_router(explain.router)
    app.include_router(v2.router)
    app.include_router(metrics.router)
    return app


SPEC_ENV = "MEDPIPE_SERVE_SPEC"


def write_spec(path: Path, cfg: ServingConfig, export_cfg: ExportConfig, model_uri: str) -> Path:
    """Write what every ``serve --workers N`` worker builds its app from (read by :func:`create_app_from_spec`);
    the spec's folder is the workers' ``shared_dir``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = {"serving": cfg.model_dump(mode="json"), "export": export_cfg.model_dump(mode="json"), "uri": model_uri,
            "shared_dir": str(path.parent)}  # fmt: skip
    path.write_text(json.dumps(spec))
    return path


def create_app_from_spec() -> FastAPI:
    """The app factory a uvicorn worker process calls (``factory=True``): the spec file named by ``SPEC_ENV``."""
    from medpipe.settings import get_settings

    spec = json.loads(Path(os.environ[SPEC_ENV]).read_text())
    cfg, export_cfg = ServingConfig(**spec["serving"]), ExportConfig(**spec["export"])
    return create_app(get_settings(), cfg, export_cfg, spec["uri"], Path(spec["shared_dir"]))
