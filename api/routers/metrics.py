"""`GET /metrics`: the gateway's Prometheus metrics (api/observability.py).

Open like `/healthz` (a scraper has no user token): it shows counts by route template
and gauges, no run contents. Turn it off with `DURATASK_GATEWAY_METRICS=false`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.errors import COMMON, ApiError, responses

router = APIRouter(tags=["health"], responses=responses(*COMMON, 404))


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        404: {"description": "metrics are turned off"},
    },
)
async def metrics(request: Request) -> Response:
    registry = getattr(request.app.state, "metrics", None)
    if registry is None:
        raise ApiError(404, "gateway metrics are off (DURATASK_GATEWAY_METRICS=false)")
    await registry.refresh()
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
