"""medpipe's own API under ``/v1``: health, ready, model, predict, reload, feedback."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from components.serving import schemas
from components.serving.deps import ApiKey, CurrentModel, State
from components.serving.errors import ERROR_RESPONSES, error_response
from components.serving.inference_log import UnknownPrediction
from components.serving.inputs import NPY_STACK, read_images
from components.serving.scoring import score
from medpipe.errors import MedpipeError

router = APIRouter(prefix="/v1", tags=["v1"])

_PREDICT_BODY = {
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
            **{
                t: {"schema": {"type": "string", "format": "binary"}}
                for t in ("image/*", "application/dicom", NPY_STACK)
            },
        },
    }
}


@router.get("/health", response_model=schemas.Health)
async def health() -> schemas.Health:
    return schemas.Health(status="ok")


@router.get("/ready", response_model=schemas.Ready, responses={503: {"model": schemas.Ready}})
async def ready(state: State) -> Any:
    if (reason := state.not_ready()) is not None:
        body = schemas.Ready(ready=False, detail=reason)
        return JSONResponse(status_code=503, content=body.model_dump())
    return schemas.Ready(ready=True, model_version=state.model.version)


@router.get("/model", response_model=schemas.ModelInfo, dependencies=[ApiKey])
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
        challenger_version=state.challenger.version if state.challenger else None,
        challenger_error=state.challenger_error,
    )


@router.post(
    "/predict",
    response_model=schemas.PredictResponse,
    dependencies=[ApiKey],
    responses=ERROR_RESPONSES,
    openapi_extra=_PREDICT_BODY,
)
async def predict(request: Request, state: State, model: CurrentModel) -> schemas.PredictResponse:
    """Classify one or many images: multipart field ``files`` (repeatable), JSON with base64 images, one raw
    ``image/*`` / ``application/dicom`` body (optional ``X-Filename`` header), or N images as one
    ``application/x-npy`` array (N, H, W[, C]) (the fast batch body; images named ``<X-Filename or stack>[i]``)."""
    names, decoded, raw = await read_images(request, model, state.cfg)
    scored = await score(request.state.request_id, state, model, names, decoded, raw=raw)
    model = scored.model  # the challenger, when the canary answered
    request.state.model_version = model.version
    pre = model.preprocessing
    classes, probs = pre.class_names, scored.probabilities
    decided, extra = pre.decide(probs), pre.decision_fields(probs)
    return schemas.PredictResponse(
        request_id=scored.request_id,
        model=schemas.ModelRef(name=model.name, version=model.version),
        predictions=[
            schemas.Prediction(
                index=i,
                filename=names[i],
                predicted_class=classes[int(decided[i])],
                confidence=float(p[decided[i]]),
                probabilities={n: float(v) for n, v in zip(classes, p, strict=True)},
                **extra[i],
            )
            for i, p in enumerate(probs)
        ],
    )


@router.post("/reload", response_model=schemas.ReloadResponse, dependencies=[ApiKey])
async def reload(state: State) -> Any:
    """Check the registry now and swap to a new champion if there is one."""
    before = state.version
    try:
        swapped = await state.reload()
    except Exception as err:  # noqa: BLE001
        return error_response(503, "reload_failed", f"{err}; still serving version {before}")
    return schemas.ReloadResponse(reloaded=swapped, previous_version=before, version=state.version)


@router.post("/feedback", response_model=schemas.FeedbackResponse, dependencies=[ApiKey])
async def feedback(body: schemas.FeedbackRequest, state: State) -> Any:
    """Attach the true label to a served request (for accuracy monitoring)."""
    try:
        n = await run_in_threadpool(state.inference_log.add_feedback, body.request_id, body.label, body.index)
    except UnknownPrediction as err:
        return error_response(404, "not_found", str(err))
    except MedpipeError as err:  # a label that is not a class of the model
        return error_response(422, "invalid_label", str(err))
    return schemas.FeedbackResponse(updated=n)
