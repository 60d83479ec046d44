"""Open Inference Protocol (KServe v2) beside ``/v1``: health, server and model metadata, readiness, infer.

The one input is the ONNX graph's own: ``pixels``, FP32 ``[N, C, S, S]`` raw pixel values 0..255 at the
model's size (the graph normalises). Outputs: ``probabilities`` ``[N, K]``, ``embedding`` ``[N, D]`` and
``decision`` INT64 ``[N]``: the index (into ``class_names``) of the served decision, made as ``/v1`` makes it
(:meth:`~medpipe.imaging.preprocessing.Preprocessing.decide`: a binary model's stored threshold on the positive
class's probability, chosen on validation; argmax for a multi-class model, and the ``decision`` parameter says
so). The response's and the model metadata's ``parameters`` carry ``class_names``, ``positive_class``,
``threshold`` and ``decision``.
Every ``/models/{name}`` route also has its ``/models/{name}/versions/{version}`` form.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from components.deploy.runtime import INPUT_NAME, OUTPUT_NAMES
from components.serving import oip
from components.serving.deps import ApiKey, State
from components.serving.images import DecodedImage, InputError
from components.serving.model_source import LoadedModel
from components.serving.scoring import score
from components.serving.state import ServingState

router = APIRouter(prefix="/v2", tags=["v2 (Open Inference Protocol)"])


def _model(request: Request, state: ServingState, name: str, version: str | None) -> LoadedModel:
    model = state.model
    if model is None:
        raise InputError(503, "model_not_loaded", f"no model loaded yet from {state.model_uri}: {state.last_error}")
    if name != model.name or (version is not None and version != model.version):
        asked = name if version is None else f"{name} version {version}"
        raise InputError(404, "model_not_found", f"{asked} is not served; this server serves {model.name} "
                         f"version {model.version}")  # fmt: skip
    request.state.model_version = model.version
    return model


def _input_shape(model: LoadedModel) -> tuple[int, int, int]:
    pre = model.preprocessing
    return pre.channels, pre.image_size, pre.image_size


DECISION = "decision"  # INT64 [N]: the served decision's class index


def _decision_parameters(model: LoadedModel) -> dict[str, Any]:
    """How ``decision`` is made: the stored operating point (binary) or argmax (multi-class / none stored)."""
    pre = model.preprocessing
    op = pre.operating_point
    thresholded = op is not None and op.threshold is not None and op.positive_index is not None
    return {
        "class_names": pre.class_names,
        "positive_class": op.positive_class if thresholded else None,
        "threshold": op.threshold if thresholded else None,
        DECISION: op.describe() if op is not None else "argmax over the class probabilities (no operating point)",
    }


def _metadata(model: LoadedModel) -> dict[str, Any]:
    dims = {o.name: o.shape[-1] for o in model.session.get_outputs()}
    outputs = [{"name": n, "datatype": "FP32", "shape": [-1, dims.get(n, -1)]} for n in OUTPUT_NAMES]
    return {
        "name": model.name,
        "versions": [model.version],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, *_input_shape(model)]}],
        "outputs": [*outputs, {"name": DECISION, "datatype": "INT64", "shape": [-1]}],
        "parameters": _decision_parameters(model),
    }


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def ready(state: State) -> Any:
    ok = state.not_ready() is None
    return JSONResponse(status_code=200 if ok else 503, content={"ready": ok})


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "medpipe", "version": "1", "extensions": ["binary_tensor_data"]}


@router.get("/models/{name}", dependencies=[ApiKey])
@router.get("/models/{name}/versions/{version}", dependencies=[ApiKey])
async def model_metadata(name: str, request: Request, state: State, version: str | None = None) -> dict[str, Any]:
    return _metadata(_model(request, state, name, version))


@router.get("/models/{name}/ready", dependencies=[ApiKey])
@router.get("/models/{name}/versions/{version}/ready", dependencies=[ApiKey])
async def model_ready(name: str, request: Request, state: State, version: str | None = None) -> dict[str, Any]:
    _model(request, state, name, version)
    return {"name": name, "ready": True}


def _pixels(request: oip.InferRequest, model: LoadedModel, limit: int) -> np.ndarray:
    expected = _input_shape(model)
    if set(request.inputs) != {INPUT_NAME}:
        got = sorted(request.inputs)
        raise InputError(400, "invalid_infer_request", f"send one input named {INPUT_NAME!r}, not {got}")
    pixels = request.inputs[INPUT_NAME]
    if pixels.ndim != 4 or pixels.shape[1:] != expected or len(pixels) == 0:
        want = ", ".join(map(str, expected))
        raise InputError(
            400,
            "wrong_shape",
            f"input {INPUT_NAME!r} has shape {list(pixels.shape)}; this model takes [N, {want}] raw pixels 0..255 "
            f"(see GET /v2/models/{model.name})",
        )
    if len(pixels) > limit:
        raise InputError(413, "too_many_images", f"{len(pixels)} images, over serving.max_images_per_request={limit}")
    return np.ascontiguousarray(pixels, dtype=np.float32)


def _as_images(pixels: np.ndarray) -> list[DecodedImage]:
    """What the inference log records of tensor inputs: the uint8 (H, W, C) images they are."""
    images = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    return [DecodedImage(im, im.shape[:2], im.shape[2], "TENSOR") for im in images]


@router.post("/models/{name}/infer", dependencies=[ApiKey])
@router.post("/models/{name}/versions/{version}/infer", dependencies=[ApiKey])
async def infer(name: str, request: Request, state: State, version: str | None = None) -> Response:
    model = _model(request, state, name, version)
    body = await request.body()
    parsed = await run_in_threadpool(oip.parse_infer, body, request.headers.get(oip.HEADER_LENGTH))
    pixels = _pixels(parsed, model, state.cfg.max_images_per_request)
    decoded = _as_images(pixels)
    names = [f"{parsed.id or 'tensor'}[{i}]" for i in range(len(pixels))]
    scored = await score(request.state.request_id, state, model, names, decoded, pixels=pixels, routed=version is None)
    request.state.model_version = scored.model.version  # the challenger, when the canary answered
    outputs = dict(zip(OUTPUT_NAMES, (scored.probabilities, scored.embedding), strict=True))
    outputs[DECISION] = scored.model.preprocessing.decide(scored.probabilities).astype(np.int64)  # as /v1 decides
    content, headers = oip.encode_infer(
        parsed, scored.model.name, scored.model.version, outputs, _decision_parameters(scored.model)
    )
    return Response(content=content, headers=headers)
