"""MCP servers as tool sources: list a server's tools, call one, turn the result
into what the model reads.

Servers come from settings only (`DURATASK_MCP_SERVERS`), never from a definition, so
a definition can name a server but not choose what runs. Each call opens its own
session (a stdio subprocess or a streamable-HTTP session) and closes it when the call
ends or is cancelled, so a cancelled activity leaves nothing running. HTTP servers
pass the same address check as `http_request` unless allow-listed.

How a call ends:
- the tool answers: text, structured content, and images, audio and resources as
  references (never their bytes) go back to the model;
- the tool answers with `isError`, or the server refuses the call (unknown tool, bad
  arguments: a JSON-RPC error): a `ToolError`, which the model reads and can react to;
- the server cannot be reached or the session breaks: an exception, so Temporal
  retries with the step's policy and the same idempotency key.

The idempotency key reaches the tool in the request's `_meta` as
`io.duratask/idempotency-key` (with `io.duratask/run-id` and `io.duratask/step-id`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import mcp_types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.support import heartbeating
from activities.tools.http import check_destination
from activities.tools.registry import ToolContext, ToolError
from duratask.logging import get_logger
from duratask.settings import McpServerSettings, Settings
from workflows import contracts
from workflows.mcp_tools import McpToolSpec, spec
from workflows.models import McpListRequest, McpListResult

log = get_logger(__name__)

META_KEY = "io.duratask/idempotency-key"
# JSON-RPC errors that say the session failed, not the call: retried like a transport error
TRANSPORT_CODES = frozenset({mcp_types.CONNECTION_CLOSED, mcp_types.REQUEST_TIMEOUT})
MAX_LIST_PAGES = 50


class McpConfigError(Exception):
    """The server is not usable as configured (unknown, refused address): not retried."""


def server_settings(settings: Settings, server: str) -> McpServerSettings:
    cfg = settings.mcp_servers.get(server)
    if cfg is None:
        known = ", ".join(sorted(settings.mcp_servers)) or "none"
        raise McpConfigError(f"unknown MCP server '{server}' (configured: {known})")
    return cfg


@asynccontextmanager
async def connect(settings: Settings, server: str) -> AsyncIterator[Client]:
    """One session with a configured server, closed (process ended, HTTP session
    deleted) when the block exits, however it exits."""
    cfg = server_settings(settings, server)
    timeout = cfg.timeout_s
    if cfg.transport == "stdio":
        if not cfg.command:
            raise McpConfigError(f"MCP server '{server}' has no command")
        params = StdioServerParameters(
            command=cfg.command,
            args=list(cfg.args),
            env={k: v.get_secret_value() for k, v in cfg.env.items()},
            cwd=cfg.cwd,
        )
        async with Client(params, read_timeout_seconds=timeout) as client:
            yield client
        return
    if not cfg.url:
        raise McpConfigError(f"MCP server '{server}' has no url")
    try:
        await check_destination(cfg.url, cfg.allow_private or settings.http_allow_private)
    except ToolError as e:
        raise McpConfigError(f"MCP server '{server}': {e}") from None
    headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(timeout, read=timeout)) as http,
        Client(
            streamable_http_client(cfg.url, http_client=http), read_timeout_seconds=timeout
        ) as client,
    ):
        yield client


async def list_server_tools(settings: Settings, server: str) -> list[McpToolSpec]:
    out: list[McpToolSpec] = []
    async with connect(settings, server) as client:
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await client.list_tools(cursor=cursor)
            out += [
                spec(server, t.name, t.description or "", dict(t.input_schema)) for t in page.tools
            ]
            cursor = page.next_cursor
            if not cursor:
                break
    return out


async def call_tool(
    settings: Settings, server: str, tool: str, args: dict[str, Any], ctx: ToolContext
) -> Any:
    meta: dict[str, Any] = {
        META_KEY: ctx.idempotency_key,
        "io.duratask/run-id": ctx.run_id,
        "io.duratask/step-id": ctx.step_id,
    }
    async with connect(settings, server) as client:
        try:
            result = await client.call_tool(tool, args, meta=meta)  # type: ignore[arg-type]
        except MCPError as e:
            if e.code in TRANSPORT_CODES:  # the session broke or timed out: retried
                raise
            # the server refused the call (unknown tool, bad arguments): the model hears it
            raise ToolError(f"mcp:{server}/{tool}: {e.message}") from None
    return model_view(server, tool, result)


def model_view(server: str, tool: str, result: mcp_types.CallToolResult) -> Any:
    """What the model reads: the text alone when that is all there is, else a dict."""
    blocks = [_block(b) for b in result.content]
    if result.is_error:
        texts = [b["text"] for b in blocks if b.get("type") == "text"]
        raise ToolError("; ".join(texts) or f"mcp:{server}/{tool} reported an error")
    only_text = all(b["type"] == "text" for b in blocks)
    if result.structured_content is not None and only_text:
        return result.structured_content  # the text is its serialisation (the spec's SHOULD)
    if result.structured_content is None and len(blocks) == 1 and only_text:
        return blocks[0]["text"]
    out: dict[str, Any] = {"content": blocks}
    if result.structured_content is not None:
        out["structured"] = result.structured_content
    return out


def _block(block: Any) -> dict[str, Any]:
    if isinstance(block, mcp_types.TextContent):
        return {"type": "text", "text": block.text}
    if isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
        # a reference, not the bytes: base64 media would flood history and the context
        return {"type": block.type, "mime_type": block.mime_type, "bytes": len(block.data) * 3 // 4}
    if isinstance(block, mcp_types.ResourceLink):
        return {"type": "resource_link", "uri": str(block.uri), "name": block.name,
                "mime_type": block.mime_type}  # fmt: skip
    if isinstance(block, mcp_types.EmbeddedResource):
        res = block.resource
        out: dict[str, Any] = {"type": "resource", "uri": str(res.uri), "mime_type": res.mime_type}
        if isinstance(res, mcp_types.TextResourceContents):
            out["text"] = res.text
        return out
    return {"type": str(getattr(block, "type", "unknown"))}


class McpActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @activity.defn(name=contracts.MCP_LIST_ACTIVITY)
    async def list_tools(self, req: McpListRequest) -> McpListResult:
        tools: list[McpToolSpec] = []
        for server in req.servers:
            log.info("mcp list tools", run_id=req.run_id, step_id=req.step_id, server=server)
            try:
                async with heartbeating(server=server):
                    tools += await list_server_tools(self.settings, server)
            except McpConfigError as e:
                raise ApplicationError(str(e), type="NonRetryable", non_retryable=True) from None
        return McpListResult(tools=tools)


async def run_mcp_tool(
    settings: Settings, name: str, args: dict[str, Any], ctx: ToolContext
) -> Any:
    """A `mcp:<server>/<tool>` call from the tool activity (same path as built-ins)."""
    from workflows.mcp_tools import split

    parts = split(name)
    if parts is None or parts[1] == "*":
        raise ToolError(f"'{name}' is not an MCP tool name (mcp:<server>/<tool>)")
    try:
        return await call_tool(settings, parts[0], parts[1], args, ctx)
    except McpConfigError as e:
        raise ApplicationError(str(e), type="NonRetryable", non_retryable=True) from None
