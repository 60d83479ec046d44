"""FastAPI dependencies: the serving state, the current model, API-key checking."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from components.serving.images import InputError
from components.serving.model_source import LoadedModel
from components.serving.state import ServingState


def get_state(request: Request) -> ServingState:
    return request.app.state.serving


State = Annotated[ServingState, Depends(get_state)]


def current_model(request: Request, state: State) -> LoadedModel:
    model = state.model  # one read: this request uses this model to the end, even if a reload swaps it
    if model is None:
        raise InputError(503, "model_not_loaded", f"no model loaded yet from {state.model_uri}: {state.last_error}")
    request.state.model_version = model.version  # the X-Model-Version response header
    return model


CurrentModel = Annotated[LoadedModel, Depends(current_model)]


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of MEDPIPE_API_KEYS.")


def require_api_key(state: State, x_api_key: Annotated[str | None, Depends(api_key_header)] = None) -> None:
    """Keys set: every call but health/ready needs one (see :mod:`components.serving.auth`)."""
    if not state.api_keys:
        return
    if not x_api_key or not any(secrets.compare_digest(x_api_key, k) for k in state.api_keys):
        raise InputError(401, "unauthorized", "missing or wrong X-API-Key header")


ApiKey = Depends(require_api_key)
