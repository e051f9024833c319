"""`/mcp` on the gateway: duratask's MCP server over streamable HTTP.

The bearer token is checked at the door, as on every route (401 without a valid one);
each tool then calls the REST routes in process with the caller's own token, so scopes
and ownership are exactly the REST API's. Stateless and JSON-answering: no session
state lives in a gateway process, so any replica can serve any request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlparse

import httpx
from fastapi import FastAPI
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import ApiError
from api.mcp_server import build_server
from duratask.settings import Settings

INTERNAL_BASE = "http://duratask.internal"


def mount_mcp(app: FastAPI) -> None:
    """Serve MCP at `/mcp`, and run its session manager for the app's lifetime."""
    settings: Settings = app.state.settings

    @asynccontextmanager
    async def client_for(ctx: Context) -> AsyncIterator[httpx.AsyncClient]:
        headers = {}
        auth = (ctx.headers or {}).get("authorization")
        if auth:
            headers["Authorization"] = auth
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url=INTERNAL_BASE, headers=headers, timeout=330
        ) as http:
            yield http

    server = build_server(client_for)
    inner = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=_transport_security(settings, app),
    )
    manager = server.session_manager
    endpoint = next(r for r in inner.routes if getattr(r, "path", None) == "/mcp")
    asgi: ASGIApp = endpoint.app  # type: ignore[attr-defined]
    app.router.routes.append(
        Route(
            "/mcp",
            endpoint=_Guarded(app, asgi),
            methods=["GET", "POST", "DELETE"],
            include_in_schema=False,
        )
    )
    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with outer(a) as state, manager.run():
            yield state

    app.router.lifespan_context = lifespan


def _transport_security(settings: Settings, app: FastAPI) -> TransportSecuritySettings:
    """DNS-rebinding protection matters when the gateway is open (no token needed):
    then only the gateway's own host names are accepted."""
    if not app.state.auth.open:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", f"{settings.host}:*"]
    if settings.public_url:
        hosts.append(f"{urlparse(settings.public_url).hostname}:*")
    origins = [f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts]
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)


class _Guarded:
    """The gateway's authentication in front of the MCP transport."""

    def __init__(self, app: FastAPI, inner: ASGIApp) -> None:
        self.app = app
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        try:
            self.app.state.auth.authenticate(headers.get("authorization"))
        except ApiError as e:
            resp = JSONResponse({"detail": e.detail}, status_code=e.status, headers=e.headers)
            await resp(scope, receive, send)
            return
        await self.inner(scope, receive, send)
