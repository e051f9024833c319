"""Real MCP servers for a test: the stdio one is launched by whoever connects (the
worker, the gateway), the streamable-HTTP one runs as a subprocess on a free port."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from duratask.settings import McpServerSettings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stdio_server(effects: Path) -> McpServerSettings:
    return McpServerSettings(
        transport="stdio",
        command=sys.executable,
        args=["-m", "tests.fakes.mcp_servers", "stdio", "0", str(effects)],
        cwd=str(ROOT),
    )


@asynccontextmanager
async def http_server(effects: Path, port: int | None = None) -> AsyncIterator[McpServerSettings]:
    """A streamable-HTTP MCP server; yields its settings entry (loopback: allow-listed)."""
    port = port or free_port()
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "tests.fakes.mcp_servers", "http", str(port), str(effects)],
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            if proc.returncode is not None:
                raise RuntimeError("the MCP test server exited")
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the MCP test server never listened")
        yield McpServerSettings(
            transport="http", url=f"http://127.0.0.1:{port}/mcp", allow_private=True
        )
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
