"""A loopback HTTP server for `http_request` tests: JSON, echo, a large and a slow reply."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.stack import serve_asgi


async def ok(_: Request) -> Response:
    return JSONResponse({"ok": True})


async def echo(request: Request) -> Response:
    return JSONResponse(
        {"method": request.method, "headers": dict(request.headers), "body": await request.json()}
    )


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
        Route("/echo", echo, methods=["POST"]),
        Route("/big", big),
        Route("/slow", slow),
        Route("/redirect", redirect),
    ]
)


@contextlib.asynccontextmanager
async def serve_http() -> AsyncIterator[str]:
    async with serve_asgi(APP, force_exit=True) as url:
        yield url
