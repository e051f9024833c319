"""The gateway application: created by `create_app(settings)`.

The lifespan opens the store (running migrations) and connects to Temporal; if
Temporal is not up yet the gateway still starts, answers 503 where Temporal is
needed, and connects on the next request that needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from activities.tools.registry import build_registry
from api import errors, observability, openapi
from api.auth import Authenticator
from api.limits import RequestLimits
from api.mcp_endpoint import mount_mcp
from api.routers import approvals, collab, definitions, events, health, runs
from api.routers import audit as audit_router
from api.routers import codec as codec_router
from api.routers import governance as governance_router
from api.routers import links as links_router
from api.routers import metrics as metrics_router
from api.routers import schedules as schedules_router
from api.routers.compare import router as compare_router
from api.routers.regressions import router as regressions_router
from api.routers.stats import router as stats_router
from console import mount as mount_console
from duratask.logging import get_logger
from duratask.peers import PeerMismatch, joined
from duratask.settings import Settings, get_settings
from duratask.store.db import create_engine, migrate
from duratask.store.definitions import DefinitionStore
from worker.client import connect

log = get_logger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_engine(settings.database_url, settings)
    await migrate(engine)
    try:
        peers = await _join_peers(engine, settings)
    except PeerMismatch:
        await engine.dispose()
        raise
    app.state.engine = engine
    app.state.store = DefinitionStore(engine)
    app.state.temporal_lock = asyncio.Lock()
    try:
        app.state.temporal = await asyncio.wait_for(connect(settings), 5)
    except Exception as e:
        log.warning(
            "Temporal unreachable at start", address=settings.temporal_address, error=str(e)
        )
        app.state.temporal = None
    log.info("gateway ready", temporal=settings.temporal_address, task_queue=settings.task_queue)
    try:
        yield
    finally:
        hub = getattr(app.state, "stream_hub", None)
        if hub is not None:
            await hub.close()
        await peers.aclose()
        await engine.dispose()


async def _join_peers(engine: Any, settings: Settings) -> contextlib.AsyncExitStack:
    """Check this gateway's shared settings against the live peers and announce it."""
    stack = contextlib.AsyncExitStack()
    try:
        await stack.enter_async_context(joined(engine, settings, "gateway"))
    except PeerMismatch as e:
        log.error("gateway refuses to start", reason=str(e))
        raise
    return stack


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="duratask",
        version="0.1.0",
        description="Durable AI-agent task orchestration on Temporal.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.auth = Authenticator(settings)
    app.state.tool_names = build_registry(settings).names()
    errors.install(app)
    app.add_middleware(RequestLimits, max_body_bytes=settings.max_body_bytes)
    observability.install(app, settings)  # request log + metrics, tracing (docs/observability.md)
    app.include_router(health.router)
    app.include_router(definitions.router)
    app.include_router(stats_router)  # insights (docs/insights.md)
    app.include_router(regressions_router)
    app.include_router(compare_router)  # before runs: `/v1/runs/compare` is not a run id
    app.include_router(runs.router)
    app.include_router(approvals.router)
    app.include_router(governance_router.router)  # budget, input, rerun (docs/runs.md)
    app.include_router(links_router.router)  # delivered links (docs/approvals.md#delivery)
    app.include_router(schedules_router.router)
    app.include_router(events.router)
    app.include_router(collab.router)
    codec_router.install(app, settings)  # /codec/encode|decode + its CORS (docs/security.md)
    app.include_router(metrics_router.router)  # /metrics (docs/observability.md)
    app.include_router(audit_router.router)
    mount_mcp(app)  # duratask as an MCP server at /mcp (docs/mcp.md)
    mount_console(app)  # the web console under /ui (docs/console.md)
    openapi.install(app)  # schemas FastAPI cannot infer (raw definition bodies)
    return app
