"""duratask as an MCP server: tools that start, follow, steer, approve and schedule runs.

Every tool is one call to the gateway's REST API, so MCP sees exactly what any other
API caller sees: the same auth and scopes (reads need `tasks:read`, writes
`tasks:write`, decisions `tasks:approve`), the same ownership rules (what the caller
may not see is "not found"), the same validation and error messages. Two front doors:

- `duratask mcp` (stdio, for IDEs and desktop assistants): calls the gateway over HTTP
  with the CLI's token;
- `/mcp` on the gateway (streamable HTTP): the caller's bearer token is checked at the
  door (401 without a valid one) and forwarded, in process, to the REST routes.

A refused call is an MCP tool error (`isError`) whose text says what to fix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

ClientFor = Callable[[Context], AbstractAsyncContextManager[httpx.AsyncClient]]

INSTRUCTIONS = """duratask runs AI-agent tasks as durable workflows. A task definition
(list_definitions) is started as a run (start_run); follow it with get_run (state:
status, current step, pending approvals) and get_run_result (waits for the end). Steer
a running agent with send_message; decide an approval step with decide_approval
(approvers only); schedule runs with create_schedule."""

RunId = Annotated[
    str, Field(description="The run id, e.g. run-01J... (child runs: <parent>/<step>)")
]


def _path_id(value: str) -> str:
    return quote(value, safe="/")


async def call(http: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
    """One REST call; a 4xx/5xx becomes a tool error carrying the gateway's message."""
    try:
        resp = await http.request(method, path, **kw)
    except httpx.HTTPError as e:
        raise ToolError(f"cannot reach the duratask gateway: {e}") from None
    if resp.status_code >= 400:
        try:
            body = resp.json()
        except ValueError:
            body = {"detail": resp.text}
        detail = body.get("detail", resp.text) if isinstance(body, dict) else resp.text
        problems = body.get("problems") if isinstance(body, dict) else None
        hint = {
            401: " (the token is missing or invalid)",
            403: " (ask for a token with that scope)",
            404: " (check the id; you only see your own and your teams' things)",
        }.get(resp.status_code, "")
        extra = f"; problems: {problems}" if problems else ""
        raise ToolError(f"HTTP {resp.status_code}: {detail}{hint}{extra}")
    if resp.status_code == 204 or not resp.content:
        return {}
    return resp.json()


async def decide_approval(
    http: httpx.AsyncClient, run_id: str, decision: str, comment: str | None, output: Any = None
) -> Any:
    """The one path by which MCP decides an approval step (the gateway's approvals
    route, which records the authenticated caller as the approver); `output`: an edit."""
    body = {"decision": decision, "comment": comment, "output": output}
    return await call(http, "POST", f"/v1/runs/{_path_id(run_id)}/approvals", json=body)


def _brief(state: dict[str, Any]) -> dict[str, Any]:
    """A run's state without the bulky parts (events, conversations)."""
    keep = ("run_id", "definition_id", "definition_version", "status", "current_step",
            "result", "error", "progress", "pending_approvals", "usage", "owner",
            "created_at", "completed_at", "temporal_ui_url")  # fmt: skip
    out = {k: state.get(k) for k in keep if k in state}
    out["steps"] = [
        {k: s.get(k) for k in ("id", "action", "status", "output", "error") if k in s}
        for s in state.get("steps", [])
    ]
    return out


def build_server(client_for: ClientFor) -> MCPServer:
    server = MCPServer("duratask", instructions=INSTRUCTIONS)

    @server.tool(description="List task definitions (id, name, latest version, description).")
    async def list_definitions(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=500, description="At most this many")] = 100,
    ) -> dict[str, Any]:
        async with client_for(ctx) as http:
            page = await call(http, "GET", "/v1/definitions", params={"limit": limit})
        items = []
        for d in page.get("items", []):
            body = d.get("definition") or {}
            items.append({"id": d.get("id"), "version": d.get("version"), "name": body.get("name"),
                          "description": body.get("description"), "inputs": body.get("inputs")})  # fmt: skip
        return {"items": items, "total": page.get("total", len(items))}

    @server.tool(
        description="Start a run of a task definition. Returns the run id and its first "
        "state; follow it with get_run or get_run_result. Needs tasks:write."
    )
    async def start_run(
        ctx: Context,
        definition_id: Annotated[str, Field(description="The definition's id")],
        input: Annotated[
            dict[str, Any] | None, Field(description="The definition's inputs, by name")
        ] = None,
        version: Annotated[int | None, Field(description="A version; default: latest")] = None,
        idempotency_key: Annotated[
            str | None, Field(description="Starting twice with the same key returns the same run")
        ] = None,
        priority: Literal["low", "normal", "high", "urgent"] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"definition_id": definition_id, "input": input or {}}
        for key, value in (("version", version), ("idempotency_key", idempotency_key),
                           ("priority", priority)):  # fmt: skip
            if value is not None:
                body[key] = value
        async with client_for(ctx) as http:
            return _brief(await call(http, "POST", "/v1/runs", json=body))

    @server.tool(
        description="A run's current state: status, current step, step outputs, pending "
        "approvals, usage, error."
    )
    async def get_run(ctx: Context, run_id: RunId) -> dict[str, Any]:
        async with client_for(ctx) as http:
            return _brief(await call(http, "GET", f"/v1/runs/{_path_id(run_id)}"))

    @server.tool(
        description="A run's result. Waits up to wait_seconds for the run to end; `done` "
        "says whether it has (if not, call again)."
    )
    async def get_run_result(
        ctx: Context,
        run_id: RunId,
        wait_seconds: Annotated[float, Field(ge=0, le=300)] = 30,
    ) -> dict[str, Any]:
        async with client_for(ctx) as http:
            res = await call(
                http, "GET", f"/v1/runs/{_path_id(run_id)}/result", params={"wait": wait_seconds}
            )
        return {k: res.get(k) for k in ("run_id", "status", "done", "result", "error")} | {
            "pending_approvals": (res.get("state") or {}).get("pending_approvals", [])
        }

    @server.tool(description="List runs, newest first, optionally by definition or status.")
    async def list_runs(
        ctx: Context,
        definition_id: str | None = None,
        status: Annotated[
            str | None,
            Field(description="queued, running, awaiting_approval, completed, failed, cancelled"),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 20,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"page_size": limit}
        if definition_id:
            params["definition_id"] = definition_id
        if status:
            params["status"] = status
        async with client_for(ctx) as http:
            return dict(await call(http, "GET", "/v1/runs", params=params))

    @server.tool(
        description="Send a running agent a message. mode: steer (interrupt the current "
        "model call and add the message), collect (merge after the current turn), followup "
        "(a new turn afterwards). Needs tasks:write."
    )
    async def send_message(
        ctx: Context,
        run_id: RunId,
        message: Annotated[str, Field(min_length=1)],
        mode: Literal["steer", "collect", "followup"] = "collect",
    ) -> dict[str, Any]:
        async with client_for(ctx) as http:
            path = f"/v1/runs/{_path_id(run_id)}/messages"
            return dict(await call(http, "POST", path, json={"mode": mode, "message": message}))

    @server.tool(
        description="Approve or reject the approval step a run waits at. Only the step's "
        "approvers may decide (needs tasks:approve); you decide as yourself. `output` "
        "approves with an edit: it replaces the output of the step the approval gates."
    )
    async def decide_approval_step(
        ctx: Context,
        run_id: RunId,
        decision: Literal["approve", "reject"],
        comment: Annotated[str | None, Field(max_length=4000)] = None,
        output: Annotated[
            Any, Field(description="an edited output for the gated step (approve only)")
        ] = None,
    ) -> dict[str, Any]:
        async with client_for(ctx) as http:
            return dict(await decide_approval(http, run_id, decision, comment, output))

    @server.tool(description="Approval steps waiting for you.")
    async def list_approvals(ctx: Context) -> dict[str, Any]:
        async with client_for(ctx) as http:
            return dict(await call(http, "GET", "/v1/approvals"))

    @server.tool(description="Cancel a run. Needs tasks:write.")
    async def cancel_run(ctx: Context, run_id: RunId, reason: str = "") -> dict[str, Any]:
        async with client_for(ctx) as http:
            path = f"/v1/runs/{_path_id(run_id)}/cancel"
            return dict(await call(http, "POST", path, json={"reason": reason}))

    @server.tool(
        description="Schedule runs of a definition: exactly one of cron (5 fields, e.g. "
        "'0 9 * * 1-5'), every (e.g. '15m'), text (e.g. '8am daily') or at (one time, ISO "
        "8601). Needs tasks:write."
    )
    async def create_schedule(
        ctx: Context,
        definition_id: str,
        input: dict[str, Any] | None = None,
        cron: str | None = None,
        every: str | None = None,
        text: str | None = None,
        at: str | None = None,
        timezone: str = "UTC",
        id: Annotated[str | None, Field(description="becomes sched-<id>")] = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"definition_id": definition_id, "input": input or {},
                                "timezone": timezone}  # fmt: skip
        for key, value in (("cron", cron), ("every", every), ("text", text), ("at", at),
                           ("id", id), ("description", description)):  # fmt: skip
            if value is not None:
                body[key] = value
        async with client_for(ctx) as http:
            return dict(await call(http, "POST", "/v1/schedules", json=body))

    @server.tool(description="List schedules (id, definition, spec, next runs, paused).")
    async def list_schedules(ctx: Context) -> dict[str, Any]:
        async with client_for(ctx) as http:
            return dict(await call(http, "GET", "/v1/schedules"))

    @server.tool(
        description="Cancel (delete) a schedule; runs it started go on. Needs tasks:write."
    )
    async def cancel_schedule(ctx: Context, schedule_id: str) -> dict[str, Any]:
        async with client_for(ctx) as http:
            await call(http, "DELETE", f"/v1/schedules/{quote(schedule_id, safe='')}")
        return {"schedule_id": schedule_id, "cancelled": True}

    return server


def gateway_client(base_url: str, token: str | None, timeout: float = 330) -> ClientFor:
    """For `duratask mcp`: one HTTP client to the gateway, the CLI's token on every call."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout)

    @asynccontextmanager
    async def client_for(_: Context) -> AsyncIterator[httpx.AsyncClient]:
        yield http

    return client_for
