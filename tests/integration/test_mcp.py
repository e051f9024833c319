"""MCP both ways through a real gateway and worker on the dev server.

- duratask as an MCP server: the SDK's real client drives `duratask mcp` (stdio, a
  subprocess talking to the gateway with its token) and `/mcp` on the gateway
  (streamable HTTP): start a run, follow it, approve its approval step, schedule;
  a reader token is refused for writes, no token at all is a 401.
- MCP servers as tool sources: a definition naming an unknown server or a tool the
  server does not offer is refused at save (422 naming it).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx2
import mcp_types
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from temporalio.testing import WorkflowEnvironment

from tests.mcp_support import ROOT, http_server, stdio_server
from tests.stack import Stack, run_stack

APPROVER = "lead@example.com"
KEYS: list[dict[str, Any]] = [
    {"key": "k-lead", "identity": APPROVER,
     "scopes": ["tasks:read", "tasks:write", "tasks:approve"], "groups": ["release"]},
    {"key": "k-rae", "identity": "rae", "scopes": ["tasks:read"], "groups": ["release"]},
]  # fmt: skip
REVIEW = {
    "id": "mcp-review",
    "inputs": {"change": {"type": "string", "required": True}},
    "steps": [
        {"id": "review", "action": "approval", "approvers": [APPROVER],
         "prompt": "Ship {{ input.change }}?"},
        {"id": "ship", "action": "llm_call", "prompt": "shipped {{ input.change }}"},
    ],
}  # fmt: skip


def data(result: mcp_types.CallToolResult) -> Any:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return result.structured_content
    block = result.content[0]
    assert isinstance(block, mcp_types.TextContent)
    return json.loads(block.text)


def error_text(result: mcp_types.CallToolResult) -> str:
    assert result.is_error
    return " ".join(b.text for b in result.content if isinstance(b, mcp_types.TextContent))


async def follow_until(client: Client, run_id: str, status: str) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for _ in range(300):
        state = data(await client.call_tool("get_run", {"run_id": run_id}))
        if state["status"] == status:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"{run_id} never became {status}: {state.get('status')}")


async def drive(client: Client) -> None:
    """What an assistant does: find the task, start it, follow it, approve, read the result."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    for name in ("start_run", "get_run", "get_run_result", "list_definitions", "list_runs",
                 "send_message", "decide_approval_step", "create_schedule", "list_schedules",
                 "cancel_schedule"):  # fmt: skip
        assert name in tools and tools[name].description, name
    assert tools["start_run"].input_schema["required"] == ["definition_id"]
    defs = data(await client.call_tool("list_definitions", {}))
    assert "mcp-review" in [d["id"] for d in defs["items"]]
    bad = await client.call_tool("start_run", {"definition_id": "mcp-review"})
    assert "change" in error_text(bad)  # the missing input is named
    run = data(
        await client.call_tool(
            "start_run", {"definition_id": "mcp-review", "input": {"change": "v2"}}
        )
    )
    run_id = run["run_id"]
    parked = await follow_until(client, run_id, "awaiting_approval")
    assert parked["pending_approvals"]
    noted = await client.call_tool(
        "send_message", {"run_id": run_id, "message": "context for later", "mode": "collect"}
    )
    assert not noted.is_error, noted.content
    pending = data(await client.call_tool("get_run_result", {"run_id": run_id, "wait_seconds": 0}))
    assert pending["done"] is False
    decided = data(
        await client.call_tool(
            "decide_approval_step", {"run_id": run_id, "decision": "approve", "comment": "ok"}
        )
    )
    assert decided["approver"] == APPROVER
    result = data(await client.call_tool("get_run_result", {"run_id": run_id, "wait_seconds": 30}))
    assert result["done"] and result["status"] == "completed"
    # the collected message became a new turn of the `ship` step (the echo model answers it)
    assert result["result"] == "context for later"
    assert result["status"] == "completed"
    runs = data(await client.call_tool("list_runs", {"definition_id": "mcp-review"}))
    assert isinstance(runs["items"], list)
    # schedules: create, see, cancel
    sched = data(
        await client.call_tool(
            "create_schedule",
            {"definition_id": "mcp-review", "cron": "0 9 * * 1", "input": {"change": "weekly"}},
        )
    )
    sid = sched["id"]
    listed = data(await client.call_tool("list_schedules", {}))
    assert sid in [s["id"] for s in listed["items"]]
    data(await client.call_tool("cancel_schedule", {"schedule_id": sid}))
    listed = data(await client.call_tool("list_schedules", {}))
    assert sid not in [s["id"] for s in listed["items"]]


@pytest.fixture
async def stack(dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path) -> Any:
    async with run_stack(
        dev_env, task_queue, tmp_path, api_keys=KEYS, headers={"Authorization": "Bearer k-lead"}
    ) as s:
        # shared with the team, so the reader may see (not start) it
        r = await s.http.put("/v1/definitions/mcp-review", params={"team": "release"}, json=REVIEW)
        assert r.status_code == 201, r.text
        yield s


async def test_duratask_mcp_over_stdio(stack: Stack) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "cli.main", "mcp", "--url", stack.url],
        env={"DURATASK_TOKEN": "k-lead"},
        cwd=str(ROOT),
    )
    async with Client(params, read_timeout_seconds=120) as client:
        await drive(client)


def http_client(stack: Stack, token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=120)
    return Client(streamable_http_client(f"{stack.url}/mcp", http_client=http))


async def test_gateway_mcp_endpoint_with_scopes(stack: Stack) -> None:
    async with http_client(stack, "k-lead") as client:
        await drive(client)
    # a reader may look but not start, steer or decide
    async with http_client(stack, "k-rae") as reader:
        defs = data(await reader.call_tool("list_definitions", {}))
        assert defs["items"]
        refused = await reader.call_tool(
            "start_run", {"definition_id": "mcp-review", "input": {"change": "x"}}
        )
        assert "lacks the 'tasks:write' scope" in error_text(refused)
        refused = await reader.call_tool(
            "create_schedule", {"definition_id": "mcp-review", "every": "1h"}
        )
        assert "tasks:write" in error_text(refused)
    # no token: the door is shut
    r = await stack.http.post("/mcp", json={}, headers={"Authorization": ""})
    assert r.status_code == 401 and "bearer token" in r.json()["detail"]


async def test_save_refuses_unknown_mcp_servers_and_tools(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with (
        http_server(tmp_path / "remote") as remote,
        run_stack(
            dev_env, task_queue, tmp_path, worker=False,
            mcp_servers={"local": stdio_server(tmp_path / "local"), "remote": remote},
        ) as s,
    ):  # fmt: skip

        def body(tools: list[str]) -> dict[str, Any]:
            return {"id": "uses-mcp", "tools": tools,
                    "steps": [{"id": "a", "action": "llm_call", "prompt": "p"}]}  # fmt: skip

        r = await s.http.put("/v1/definitions/uses-mcp", json=body(["mcp:github/create_issue"]))
        assert r.status_code == 422
        assert "unknown MCP server 'github'" in r.json()["detail"]
        r = await s.http.put("/v1/definitions/uses-mcp", json=body(["mcp:remote/launch"]))
        assert r.status_code == 422
        assert "MCP server 'remote' offers no tool 'launch'" in r.json()["detail"]
        r = await s.http.put("/v1/definitions/uses-mcp", json=body(["mcp:local/teleport"]))
        assert r.status_code == 422 and "'teleport'" in r.json()["detail"]
        ok = ["mcp:remote/echo", "mcp:local/*", "mcp:local/remember"]
        r = await s.http.put("/v1/definitions/uses-mcp", json=body(ok))
        assert r.status_code == 201, r.text


def doc_block(start: str) -> str:
    """The fenced block of docs/mcp.md whose first line starts with `start`."""
    text = (ROOT / "docs" / "mcp.md").read_text()
    for block in text.split("```")[1::2]:
        body = block.split("\n", 1)[1]
        if body.startswith(start):
            return body
    raise AssertionError(f"no block starting with {start!r} in docs/mcp.md")


async def test_the_documented_example_works(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """docs/mcp.md's notes server and scripted demo, as written there."""
    (tmp_path / "notes_server.py").write_text(doc_block("# notes_server.py"))
    notes = {"command": sys.executable, "args": ["notes_server.py"], "cwd": str(tmp_path)}
    async with run_stack(dev_env, task_queue, tmp_path, mcp_servers={"notes": notes}) as s:
        r = await s.http.put(
            "/v1/definitions/note-demo",
            content=doc_block("id: note-demo"),
            headers={"Content-Type": "application/yaml"},
        )
        assert r.status_code == 201, r.text
        run = await s.start("note-demo")
        result = await s.wait_result(run["run_id"])
        async with http_client(s, None) as client:  # an open (dev) gateway needs no token
            found = data(await client.call_tool("list_runs", {"definition_id": "note-demo"}))
            assert isinstance(found["items"], list)
            done_run = data(await client.call_tool("get_run", {"run_id": run["run_id"]}))
            assert done_run["status"] == "completed"
    assert result["status"] == "completed" and result["result"] == "Noted."
    done = json.loads((tmp_path / "notes.json").read_text())
    assert list(done.values()) == ["the demo ran"]
    assert next(iter(done)).startswith(run["run_id"] + "/work/")
