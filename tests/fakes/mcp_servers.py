"""Real MCP servers for the tests, written with the SDK's MCPServer (FastMCP).

Run as `python -m tests.fakes.mcp_servers stdio|http <port> <effects-dir>`. Tools:
- `echo(text)`: answers the text back, upper-cased, with structured content;
- `remember(note)`: a side effect keyed by the caller's idempotency key (read from
  the request's `_meta`): every attempt is appended to `attempts.log`, the effect to
  `effects.log` only the first time a key is seen; the first attempt of a note
  starting with `slow` then sleeps 30 s, so a test can kill the worker mid-call;
- `fail(reason)`: a tool error (`isError`) the model should read;
- `picture()`: an image and a resource link, to check what reaches the model.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import os
import sys
from pathlib import Path
from typing import Any

import mcp_types
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

IDEMPOTENCY_META = "io.duratask/idempotency-key"


def build(effects_dir: Path) -> MCPServer:
    server = MCPServer("duratask-test-tools")

    @server.tool(description="Echo the text back, upper-cased.")
    def echo(text: str) -> dict[str, Any]:
        return {"echo": text.upper()}

    @server.tool(description="Remember a note (a side effect, done once per idempotency key).")
    async def remember(note: str, ctx: Context) -> str:
        meta = ctx.request_context.meta or {}
        key = str(meta.get(IDEMPOTENCY_META) or "")
        if not key:
            raise ValueError("no idempotency key in _meta")
        first = _append_once(effects_dir, key, note)
        (effects_dir / "server.pid").write_text(str(os.getpid()))
        if first and note.startswith("slow"):
            await asyncio.sleep(30)
        return f"remembered: {note}"

    @server.tool(description="Always fails, with the reason given.")
    def fail(reason: str) -> str:
        raise ToolError(f"cannot do it: {reason}")

    @server.tool(description="A picture and a link to the full-size one.", structured_output=False)
    def picture() -> list[Any]:
        png = base64.b64encode(b"\x89PNG fake image bytes").decode()
        return [
            mcp_types.ImageContent(type="image", data=png, mime_type="image/png"),
            mcp_types.ResourceLink(type="resource_link", uri="file:///pictures/big.png",
                                   name="big.png", mime_type="image/png"),
        ]  # fmt: skip

    return server


def _append_once(effects_dir: Path, key: str, note: str) -> bool:
    """Record the attempt; record the effect unless this key already has one."""
    effects_dir.mkdir(parents=True, exist_ok=True)
    with open(effects_dir / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(effects_dir / "attempts.log", "a") as f:
            f.write(f"{key}\t{note}\n")
        effects = effects_dir / "effects.log"
        seen = effects.exists() and any(
            line.split("\t", 1)[0] == key for line in effects.read_text().splitlines()
        )
        if not seen:
            with open(effects, "a") as f:
                f.write(f"{key}\t{note}\n")
        return not seen


def counts(effects_dir: Path, name: str) -> dict[str, int]:
    """How many lines of `attempts.log` / `effects.log` each key has."""
    path = effects_dir / name
    out: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key = line.split("\t", 1)[0]
            out[key] = out.get(key, 0) + 1
    return out


def main() -> None:
    transport, port, effects = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    server = build(effects)
    if transport == "stdio":
        server.run("stdio")
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        server.run("streamable-http", host="127.0.0.1", port=port)


if __name__ == "__main__":
    main()
