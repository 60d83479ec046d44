"""The prediction server: ``create_app(settings, cfg, export_cfg, model_uri)`` builds the FastAPI app.

The model loads in ``lifespan`` (not at import); a background task polls the registry every
``serving.reload_interval_s`` and swaps to a new champion atomically. Every served image is written to
the inference log before the response goes out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from components.errors import MedpipeError
from components.models.inference import to_pixels
from components.serving import schemas
from components.serving.batcher import MicroBatcher
from components.serving.deps import ApiKey, CurrentModel, ServingState, State
from components.serving.images import DecodedImage, InputError, decode_image, set_pixel_limit
from components.serving.inference_log import InferenceLog
from components.serving.model_source import LoadedModel
from medpipe.config import ExportConfig, ServingConfig
from medpipe.settings import Settings

log = logging.getLogger("medpipe.serving")


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Reject bodies over ``max_bytes`` (by Content-Length up front, and by counting chunked bodies)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._reject(send, int(length))
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send, seen)

    async def _reject(self, send: Send, size: int) -> None:
        body = json.dumps(
            {
                "error": "request_too_large",
                "detail": f"request body is over serving.max_request_bytes={self.max_bytes} bytes ({size} seen); "
                "send fewer or smaller images per request",
                "file": None,
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _error(status: int, code: str, detail: str, file: str | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "detail": detail, "file": file})


async def _read_inputs(request: Request, cfg: ServingConfig) -> list[tuple[str, bytes]]:
    """(filename, bytes) of every image in a multipart (``files``) or JSON (base64) request."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limit = cfg.max_images_per_request
    if ctype == "multipart/form-data":
        form = await request.form(max_files=limit + 1, max_fields=limit + 16)
        files = [f for f in form.getlist("files") if not isinstance(f, str)]
        if not files:
            raise InputError(422, "no_images", "multipart request has no file in the form field 'files'")
        if len(files) > limit:
            raise InputError(413, "too_many_images", f"more than serving.max_images_per_request={limit} images")
        return [(f.filename or f"file{i}", await f.read()) for i, f in enumerate(files)]
    if ctype == "application/json":
        try:
            body = schemas.PredictJSON.model_validate_json(await request.body())
        except ValidationError as err:
            raise InputError(422, "invalid_json", f"body must be {{'images': [{{'data': base64}}]}}: {err}") from None
        if len(body.images) > limit:
            raise InputError(413, "too_many_images", f"more than serving.max_images_per_request={limit} images")
        out = []
        for i, img in enumerate(body.images):
            name = img.filename or f"image{i}"
            try:
                out.append((name, base64.b64decode(img.data, validate=True)))
            except (binascii.Error, ValueError):
                raise InputError(422, "invalid_base64", "'data' is not valid base64", name) from None
        return out
    raise InputError(415, "unsupported_content_type", f"send multipart/form-data or application/json, not {ctype!r}")


def _decode_all(inputs: list[tuple[str, bytes]], model: LoadedModel, max_pixels: int) -> list[DecodedImage]:
    pre = model.preprocessing
    return [
        decode_image(data, name, channels=pre.channels, image_size=pre.image_size, max_pixels=max_pixels)
        for name, data in inputs
    ]


def _log_rows(
    request_id: str,
    model: LoadedModel,
    inputs: list[tuple[str, bytes]],
    decoded: list[DecodedImage],
    probs: np.ndarray,
    emb: np.ndarray,
    store_images: bool,
) -> list[dict[str, Any]]:
    from monitoring.features import image_features

    feats = image_features(
        np.stack([d.array for d in decoded]),
        [d.original_size for d in decoded],
        [d.original_channels for d in decoded],
    )
    names = model.preprocessing.class_names
    return [
        {
            "request_id": request_id,
            "image_index": i,
            "filename": inputs[i][0],
            "model_name": model.name,
            "model_version": model.version,
            "predicted_class": names[int(probs[i].argmax())],
            "confidence": float(probs[i].max()),
            "class_names": names,
            "probabilities": probs[i].tolist(),
            "features": {k: float(v) for k, v in feats.iloc[i].items()},
            "embedding": emb[i],
            "image": inputs[i][1] if store_images else None,
        }
        for i in range(len(decoded))
    ]


async def _poll(state: ServingState) -> None:
    while True:
        await asyncio.sleep(state.cfg.reload_interval_s)
        with contextlib.suppress(Exception):  # reload() records and logs the error; keep serving the old model
            await state.reload()


def create_app(settings: Settings, cfg: ServingConfig, export_cfg: ExportConfig, model_uri: str) -> FastAPI:
    """The serving app for ``model_uri`` (``models:/name@champion`` or a local model folder)."""
    api_keys = settings.api_key_set()
    if cfg.require_api_key and not api_keys:
        raise MedpipeError("serving.require_api_key is true but MEDPIPE_API_KEYS is empty; set comma-separated keys")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        set_pixel_limit(cfg.max_pixels)
        batcher = MicroBatcher(cfg.max_batch, cfg.max_wait_ms)
        await batcher.start()
        state = ServingState(
            settings=settings,
            cfg=cfg,
            export_cfg=export_cfg,
            model_uri=model_uri,
            batcher=batcher,
            inference_log=InferenceLog(settings.inference_log),
            api_keys=api_keys,
        )
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

    app = FastAPI(
        title="medpipe prediction API",
        version="1",
        description="Medical image classification with the registered champion model (ONNX Runtime).",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, max_bytes=cfg.max_request_bytes)
    errors = {400: {"model": schemas.ErrorBody}, 413: {"model": schemas.ErrorBody}, 415: {"model": schemas.ErrorBody},
              422: {"model": schemas.ErrorBody}}  # fmt: skip

    @app.exception_handler(InputError)
    async def _input_error(_: Request, err: InputError) -> JSONResponse:
        return _error(err.status, err.code, err.message, err.filename)

    @app.exception_handler(MedpipeError)
    async def _medpipe_error(_: Request, err: MedpipeError) -> JSONResponse:
        return _error(422, "invalid_request", str(err))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return _error(500, "internal_error", f"{type(err).__name__}: {err}")

    @app.get("/v1/health", response_model=schemas.Health)
    async def health() -> schemas.Health:
        return schemas.Health(status="ok")

    @app.get("/v1/ready", response_model=schemas.Ready, responses={503: {"model": schemas.Ready}})
    async def ready(state: State) -> Any:
        if state.model is None:
            body = schemas.Ready(ready=False, detail=state.last_error or "loading")
            return JSONResponse(status_code=503, content=body.model_dump())
        return schemas.Ready(ready=True, model_version=state.model.version)

    @app.get("/v1/model", response_model=schemas.ModelInfo, dependencies=[ApiKey])
    async def model_info(state: State, model: CurrentModel) -> schemas.ModelInfo:
        pre = model.preprocessing
        return schemas.ModelInfo(
            name=model.name,
            version=model.version,
            uri=model.uri,
            data_version=model.data_version,
            class_names=pre.class_names,
            image_size=pre.image_size,
            channels=pre.channels,
            provider=model.provider,
            quantized=model.quantized,
            loaded_at=model.loaded_at,
            metrics=model.metrics,
            gates=model.gates,
            tags=model.tags,
            last_reload_error=state.last_error,
            batches=state.batcher.stats.batches,
            mean_batch_size=state.batcher.stats.mean_batch,
        )

    @app.post(
        "/v1/predict",
        response_model=schemas.PredictResponse,
        dependencies=[ApiKey],
        responses=errors,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                            "required": ["files"],
                        }
                    },
                    "application/json": {"schema": schemas.PredictJSON.model_json_schema()},
                },
            }
        },
    )
    async def predict(request: Request, state: State, model: CurrentModel) -> schemas.PredictResponse:
        """Classify one or many images (multipart field ``files``, repeatable, or JSON with base64 images)."""
        request_id = uuid.uuid4().hex
        inputs = await _read_inputs(request, state.cfg)
        decoded = await run_in_threadpool(_decode_all, inputs, model, state.cfg.max_pixels)
        pixels = to_pixels(np.stack([d.array for d in decoded])).numpy()
        probs, emb = await state.batcher.submit(model, pixels)
        store = state.cfg.store_images
        rows = await run_in_threadpool(_log_rows, request_id, model, inputs, decoded, probs, emb, store)
        try:
            await run_in_threadpool(state.inference_log.append, rows)
        except Exception as err:  # noqa: BLE001 - the prediction stands; the log failure is reported in the server log
            log.error("inference log write failed for request %s: %s", request_id, err)
        names = model.preprocessing.class_names
        return schemas.PredictResponse(
            request_id=request_id,
            model=schemas.ModelRef(name=model.name, version=model.version),
            predictions=[
                schemas.Prediction(
                    index=i,
                    filename=inputs[i][0],
                    predicted_class=names[int(p.argmax())],
                    confidence=float(p.max()),
                    probabilities={n: float(v) for n, v in zip(names, p, strict=True)},
                )
                for i, p in enumerate(probs)
            ],
        )

    @app.post("/v1/reload", response_model=schemas.ReloadResponse, dependencies=[ApiKey])
    async def reload(state: State) -> schemas.ReloadResponse:
        """Check the registry now and swap to a new champion if there is one."""
        before = state.version
        try:
            swapped = await state.reload()
        except Exception as err:  # noqa: BLE001
            return _error(503, "reload_failed", f"{err}; still serving version {before}")  # type: ignore[return-value]
        return schemas.ReloadResponse(reloaded=swapped, previous_version=before, version=state.version)

    @app.post("/v1/feedback", response_model=schemas.FeedbackResponse, dependencies=[ApiKey])
    async def feedback(body: schemas.FeedbackRequest, state: State) -> Any:
        """Attach the true label to a served request (for accuracy monitoring)."""
        try:
            n = await run_in_threadpool(state.inference_log.add_feedback, body.request_id, body.label, body.index)
        except MedpipeError as err:
            return _error(404, "not_found", str(err))
        return schemas.FeedbackResponse(updated=n)

    return app
