"""A loopback HTTP server for `http_request` tests: JSON, echo, redirects, a large, a slow
and a dripping reply."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from tests.stack import serve_asgi


async def ok(_: Request) -> Response:
    return JSONResponse({"ok": True})


HITS: list[str] = []  # paths requested, for tests that must prove a server was never reached


async def echo(request: Request) -> Response:
    HITS.append(request.url.path)
    raw = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "headers": dict(request.headers),
            "body": json.loads(raw) if raw else None,
        }
    )


async def to(request: Request) -> Response:
    """A redirect to `?url=` with `?code=` (default 307: method and body kept)."""
    return RedirectResponse(request.query_params["url"], int(request.query_params.get("code", 307)))


async def drip(_: Request) -> Response:
    """One byte every 0.2s for a minute: no single read ever waits long."""

    async def body() -> AsyncIterator[bytes]:
        for _ in range(300):
            yield b"x"
            await asyncio.sleep(0.2)

    return StreamingResponse(body(), media_type="text/plain")


async def big(_: Request) -> Response:
    return PlainTextResponse("x" * 200_000)


async def slow(_: Request) -> Response:
    await asyncio.sleep(5)
    return PlainTextResponse("late")


async def redirect(_: Request) -> Response:
    return RedirectResponse("/ok")


APP = Starlette(
    routes=[
        Route("/ok", ok),
        Route("/echo", echo, methods=["GET", "POST", "PUT"]),
        Route("/to", to, methods=["GET", "POST", "PUT"]),
        Route("/drip", drip),
        Route("/big", big),
        Route("/slow", slow),
        Route("/redirect", redirect),
    ]
)


@contextlib.asynccontextmanager
async def serve_http() -> AsyncIterator[str]:
    async with serve_asgi(APP, force_exit=True) as url:
        yield url
