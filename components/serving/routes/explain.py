"""``POST /v1/explain``: a Grad-CAM heatmap (raw map + PNG overlay) for one image, with its own limits.

Explanations run PyTorch with gradients (tens of times the cost of a prediction), so they take one image,
at most ``serving.explain_max_pixels`` pixels, ``serving.explain_concurrency`` at a time and
``serving.explain_rate_per_minute`` per client (API key, else address), both over all workers of the server
together (:mod:`components.serving.explain_limits`): a request beyond that is answered 429 at once, with
``Retry-After``, instead of queueing behind the others.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from components.serving import schemas
from components.serving.deps import ApiKey, CurrentModel, State
from components.serving.errors import ERROR_RESPONSES
from components.serving.explain import grad_cam, load_explainer
from components.serving.explain_limits import client_id
from components.serving.images import InputError
from components.serving.inputs import decode_all, read_inputs

router = APIRouter(prefix="/v1", tags=["v1"])


@router.post("/explain", response_model=schemas.ExplainResponse, dependencies=[ApiKey],
             responses={**ERROR_RESPONSES, 429: {"model": schemas.ErrorBody}})  # fmt: skip
async def explain(
    request: Request,
    state: State,
    model: CurrentModel,
    target: str | None = Query(None, description="Class to explain (default: the predicted one)."),
) -> schemas.ExplainResponse:
    """Why the served model decided: Grad-CAM on one image (the same bodies as ``/v1/predict``)."""
    limits = state.explain_limits
    assert limits is not None  # made in lifespan
    await run_in_threadpool(limits.check_rate, client_id(request.headers.get("x-api-key"), request.client.host))
    classes = model.preprocessing.class_names
    if target is not None and target not in classes:
        raise InputError(422, "invalid_target", f"target {target!r} is not a class of this model; use one of {classes}")
    inputs = await read_inputs(request, state.cfg, batch=False)
    if len(inputs) != 1:
        raise InputError(413, "too_many_images", f"explain takes one image per request, not {len(inputs)}")
    with limits.slot():
        budget = state.cfg.model_copy(update={"max_pixels": min(state.cfg.max_pixels, state.cfg.explain_max_pixels)})
        (decoded,) = await run_in_threadpool(decode_all, inputs, model, budget)
        explainer = state.explainers.get(model.marker) or await run_in_threadpool(load_explainer, model)
        state.explainers = {model.marker: explainer}  # only the served version's network is kept
        index = None if target is None else classes.index(target)
        result = await run_in_threadpool(grad_cam, explainer, decoded.array, index)
    return schemas.ExplainResponse(
        request_id=request.state.request_id,
        model=schemas.ModelRef(name=model.name, version=model.version),
        filename=inputs[0][0],
        predicted_class=classes[int(result.probabilities.argmax())],
        target_class=classes[result.target],
        probabilities={n: float(p) for n, p in zip(classes, result.probabilities, strict=True)},
        heatmap=result.heatmap.round(4).tolist(),
        overlay_png=base64.b64encode(result.overlay_png).decode(),
    )
