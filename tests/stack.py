"""A real gateway (uvicorn on a free loopback port) and a real worker, per test.

They share the session's dev server but get their own task queue and SQLite file,
so tests never see each other's runs or definitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from duratask.serving import EmbeddedServer
from duratask.settings import Settings
from tests.databases import chosen_db_kind, new_database_url
from tests.helpers import APPROVAL_KEY
from worker.main import build_worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Stack:
    url: str
    http: httpx.AsyncClient
    client: Client
    settings: Settings
    task_queue: str

    async def put_definition(self, body: dict[str, Any]) -> dict[str, Any]:
        r = await self.http.put(f"/v1/definitions/{body['id']}", json=body)
        assert r.status_code in (200, 201), r.text
        return r.json()  # type: ignore[no-any-return]

    async def start(self, definition_id: str, **body: Any) -> dict[str, Any]:
        r = await self.http.post("/v1/runs", json={"definition_id": definition_id, **body})
        assert r.status_code in (200, 201), r.text
        return r.json()  # type: ignore[no-any-return]

    async def wait_result(self, run_id: str, wait: float = 30) -> dict[str, Any]:
        r = await self.http.get(f"/v1/runs/{run_id}/result", params={"wait": wait})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


def stack_settings(env: WorkflowEnvironment, task_queue: str, tmp: Path, **kw: Any) -> Settings:
    address = env.client.service_client.config.target_host
    kw.setdefault("database_url", new_database_url(chosen_db_kind(), tmp))
    return Settings(
        temporal_address=address,
        task_queue=task_queue,
        http_allow_private=True,
        _env_file=None,  # type: ignore[call-arg]
        **{"approval_key": SecretStr(APPROVAL_KEY), **kw},
    )


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any, lifespan: Literal["auto", "on", "off"] = "auto", force_exit: bool = False
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port in this event loop; yields its URL.

    `force_exit` closes open connections at the end instead of waiting for them (fake
    servers with replies a test abandons mid-way)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan=lifespan
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        server.force_exit = force_exit
        await task


@contextlib.asynccontextmanager
async def run_gateway(settings: Settings) -> AsyncIterator[str]:
    async with serve_asgi(create_app(settings), lifespan="on") as url:
        yield url


@contextlib.asynccontextmanager
async def run_stack(
    env: WorkflowEnvironment,
    task_queue: str,
    tmp: Path,
    worker: bool = True,
    headers: dict[str, str] | None = None,
    **settings_kw: Any,
) -> AsyncIterator[Stack]:
    settings = stack_settings(env, task_queue, tmp, **settings_kw)
    async with contextlib.AsyncExitStack() as stack:
        if worker:
            await stack.enter_async_context(build_worker(env.client, settings, task_queue))
        url = await stack.enter_async_context(run_gateway(settings))
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=url, timeout=60, headers=headers)
        )
        yield Stack(url, http, env.client, settings, task_queue)
