"""Liveness (`/healthz`: the process is up) and readiness (`/readyz`: Temporal and
the store answer)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import get_temporal

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        200: {"description": "Temporal and the store answer"},
        503: {"description": "Temporal or the store does not answer: `checks` says which"},
    },
)
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        client = await get_temporal(request)
        await asyncio.wait_for(client.service_client.check_health(), 3)
        checks["temporal"] = "ok"
    except Exception as e:
        checks["temporal"] = f"unreachable: {getattr(e, 'detail', e)}"
    try:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["store"] = "ok"
    except Exception as e:
        checks["store"] = f"unreachable: {e}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
