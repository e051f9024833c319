"""A loopback HTTP server for `http_request` tests: JSON, echo, a large and a slow reply."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from duratask.serving import EmbeddedServer
from tests.stack import free_port


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
    port = free_port()
    server = EmbeddedServer(uvicorn.Config(APP, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = True
        await task
