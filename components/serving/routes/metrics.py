"""``GET /metrics``: Prometheus' text exposition of the server's metrics (see :mod:`telemetry`)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from components.serving.deps import State

router = APIRouter(tags=["monitoring"])


@router.get("/metrics", response_class=Response)
async def metrics(state: State) -> Response:
    content, content_type = state.metrics.exposition()
    return Response(content=content, media_type=content_type)
