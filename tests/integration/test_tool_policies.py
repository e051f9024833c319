"""Tool policies on the real stack (gateway + worker + dev server, static API keys).

An agent (the scripted model) POSTs with the real `http_request` tool to a loopback
receiver this test starts, which counts what reaches it. A policy holds POSTs outside
`https://internal.example.com/` for two approvals: the call parks, is listed with its
(masked) arguments, a repeated vote counts once, a raw signal without a proof is not
counted, and after the second approver it reaches the receiver exactly once. A rejected
call reaches the model as a tool error (what the model was sent in its next turn), and
an organisation rule from the settings denies a call without parking, before the
definition's own `allow`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment

from tests.integration.test_approvals_api import auth, cli, temporal_signal, wait_status
from tests.stack import Stack, run_stack, serve_asgi

LEAD = "lead@example.com"
KEYS: list[dict[str, Any]] = [
    {"key": "k-lead", "identity": LEAD, "scopes": ["tasks:read", "tasks:approve"]},
    {"key": "k-bob", "identity": "bob", "scopes": ["tasks:read", "tasks:approve"]},
    {"key": "k-wes", "identity": "wes", "scopes": ["tasks:read", "tasks:write"]},
]
ORG_RULES = [{"tool": "http_request", "when": "args.url | contains('/blocked')",
              "action": "deny", "reason": "blocked by the organisation"}]  # fmt: skip
SECRET = "Bearer sk-live-0123456789abcdef"


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[tuple[str, Counter[str]]]:
    """A loopback HTTP server counting the requests to each path."""
    hits: Counter[str] = Counter()

    async def hook(request: Request) -> Response:
        hits[f"{request.method} {request.url.path}"] += 1
        return JSONResponse({"received": True})

    app = Starlette(routes=[Route("/{path:path}", hook, methods=["GET", "POST"])])
    async with serve_asgi(app) as url:
        yield url, hits


def agent_def(def_id: str, url: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    call = {"id": "c1", "name": "http_request", "arguments": {
        "method": "POST", "url": url, "body": {"order": 7},
        "headers": {"Authorization": SECRET}}}  # fmt: skip
    script = [{"tool_calls": [call]}, {"text": "all done"}]
    return {
        "id": def_id,
        "tools": ["http_request"],
        "tool_policies": rules,
        "steps": [{"id": "agent", "action": "llm_call", "prompt": "Place the order.",
                   "model": {"provider": "scripted", "name": "script", "script": script}}],
    }  # fmt: skip


HOLD_OUTSIDE_POSTS = {
    "tool": "http_request",
    "when": "default(args.method, 'GET') | upper == 'POST'"
    " and not (args.url | startswith('https://internal.example.com/'))",
    "action": "approve",
    "approvers": [LEAD, "bob"],
    "min_approvals": 2,
    "timeout": "1h",
    "reason": "POST outside our domain",
}


async def put(s: Stack, body: dict[str, Any]) -> None:
    r = await s.http.put(f"/v1/definitions/{body['id']}", json=body, headers=auth("k-wes"))
    assert r.status_code == 201, r.text


async def start(s: Stack, def_id: str) -> str:
    r = await s.http.post("/v1/runs", json={"definition_id": def_id}, headers=auth("k-wes"))
    assert r.status_code == 201, r.text
    return str(r.json()["run_id"])


async def listed_item(s: Stack, key: str, run_id: str) -> dict[str, Any]:
    for _ in range(150):  # visibility is eventually consistent
        r = await s.http.get("/v1/approvals", headers=auth(key))
        assert r.status_code == 200, r.text
        items = [i for i in r.json()["items"] if i["run_id"] == run_id]
        if items:
            return items[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"{run_id} never listed")


async def decide(s: Stack, run_id: str, key: str, decision: str, comment: str | None = None) -> Any:
    body = {"decision": decision, "comment": comment}
    return await s.http.post(f"/v1/runs/{run_id}/approvals", json=body, headers=auth(key))


async def result(s: Stack, run_id: str) -> dict[str, Any]:
    """The run's whole state once it has ended."""
    r = await s.http.get(f"/v1/runs/{run_id}/result", params={"wait": 60}, headers=auth("k-wes"))
    assert r.status_code == 200, r.text
    r = await s.http.get(f"/v1/runs/{run_id}", headers=auth("k-wes"))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def events_of(s: Stack, run_id: str) -> list[dict[str, Any]]:
    r = await s.http.get(
        f"/v1/runs/{run_id}/events",
        headers={**auth("k-wes"), "Accept": "application/json"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    return body["events"] if isinstance(body, dict) else body  # type: ignore[no-any-return]


def tool_turn(state: dict[str, Any]) -> dict[str, Any]:
    """The tool result the model was sent in its next turn (the step's conversation)."""
    convo = state["steps"][0]["conversation"]
    return json.loads(next(m["content"] for m in convo if m["role"] == "tool"))


async def test_outside_post_is_held_for_two_approvers_and_runs_once(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with (
        receiver() as (base, hits),
        run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS, tool_policies=ORG_RULES) as s,
    ):
        await put(s, agent_def("order-agent", f"{base}/orders", [HOLD_OUTSIDE_POSTS]))
        run_id = await start(s, "order-agent")
        state = await wait_status(s, run_id, "awaiting_approval")
        held = state["pending_approvals"][0]
        assert held["tool"]["name"] == "http_request"
        assert held["tool"]["arguments"]["headers"]["Authorization"] == "***"

        item = await listed_item(s, "k-lead", run_id)
        assert item["kind"] == "tool_call" and item["step_id"] == "agent"
        assert item["tool"]["name"] == "http_request"
        assert item["tool"]["arguments"]["url"] == f"{base}/orders"
        assert item["tool"]["arguments"]["method"] == "POST"
        assert item["tool"]["arguments"]["body"] == {"order": 7}
        assert item["tool"]["policy"] == "definition.tool_policies[0]"
        assert SECRET not in json.dumps(item) and "sk-live" not in json.dumps(item)
        assert hits == Counter()  # parked: nothing sent yet
        code, out = await cli(s, "k-lead", "approvals", cwd=tmp_path)
        assert code == 0 and run_id in out and "http_request" in out, out
        code, out = await cli(s, "k-lead", "run", "show", run_id, cwd=tmp_path)
        assert code == 0 and "/orders" in out and '"***"' in out, out
        assert "sk-live" not in out

        # a raw signal naming an approver, without the gateway's proof: not counted
        await temporal_signal(dev_env, run_id, {"decision": "approve", "approver": LEAD})
        first = await decide(s, run_id, "k-lead", "approve")
        assert first.status_code == 200, first.text
        assert (first.json()["approvals"], first.json()["done"]) == (1, False)
        again = await decide(s, run_id, "k-lead", "approve")  # the same approver twice
        assert again.status_code == 409, again.text
        assert (await wait_status(s, run_id, "awaiting_approval"))["status"]
        assert hits == Counter()

        code, out = await cli(s, "k-bob", "run", "approve", run_id, "-m", "ok", cwd=tmp_path)
        assert code == 0, out
        final = await result(s, run_id)
        assert final["status"] == "completed", final
        assert hits == Counter({"POST /orders": 1})  # ran exactly once
        assert tool_turn(final)["status"] == 200

        events = await events_of(s, run_id)
        kinds = [e["type"] for e in events]
        assert "run.tool_approval_requested" in kinds
        assert "approval.refused" in kinds  # the unsigned signal, recorded
        decided = [e for e in events if e["type"] == "run.tool_approval_decided"]
        assert len(decided) == 1
        assert decided[0]["data"]["decision"] == "approve"
        assert sorted(decided[0]["data"]["approvers"]) == ["bob", LEAD]
        assert decided[0]["data"]["decided_by"] in (f"{LEAD}, bob", f"bob, {LEAD}")
        await asyncio.sleep(0.5)
        assert hits == Counter({"POST /orders": 1})  # and never again


async def test_refused_and_denied_calls_reach_the_model_as_tool_errors(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with (
        receiver() as (base, hits),
        run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS, tool_policies=ORG_RULES) as s,
    ):
        one = {**HOLD_OUTSIDE_POSTS, "min_approvals": 1}
        await put(s, agent_def("order-agent", f"{base}/orders", [one]))
        run_id = await start(s, "order-agent")
        await wait_status(s, run_id, "awaiting_approval")
        r = await decide(s, run_id, "k-bob", "reject", "not to that host")
        assert r.status_code == 200, r.text
        final = await result(s, run_id)
        assert final["status"] == "completed" and final["result"] == "all done"
        seen = tool_turn(final)
        assert seen == {"error": "the call to 'http_request' was rejected by bob: not to that host"}
        assert hits == Counter()
        decided = [e for e in await events_of(s, run_id)
                   if e["type"] == "run.tool_approval_decided"]  # fmt: skip
        assert decided[0]["data"]["decided_by"] == "bob"

        # the organisation's deny comes before the definition's own allow: no parking
        allow_all = [{"tool": "http_request", "action": "allow"}]
        await put(s, agent_def("blocked-agent", f"{base}/blocked", allow_all))
        blocked = await start(s, "blocked-agent")
        final = await result(s, blocked)
        assert final["status"] == "completed"
        assert "blocked by the organisation" in tool_turn(final)["error"]
        assert "settings.tool_policies[0]" in tool_turn(final)["error"]
        kinds = [e["type"] for e in await events_of(s, blocked)]
        assert "run.awaiting_approval" not in kinds and "run.tool_approval_decided" in kinds
        assert hits == Counter()


async def test_policy_expressions_are_checked_on_save(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        bad = agent_def("bad-agent", "https://example.com/x", [
            {"tool": "http_request", "action": "allow"},
            {"tool": "http_request", "when": "args.url ==", "action": "deny"},
            {"tool": "http_request", "when": "secrets.key", "action": "deny"},
        ])  # fmt: skip
        r = await s.http.put("/v1/definitions/bad-agent", json=bad, headers=auth("k-wes"))
        assert r.status_code == 422, r.text
        fields = {p["field"] for p in r.json()["problems"]}
        assert {"tool_policies[1].when", "tool_policies[2].when"} <= fields, r.json()
        no_approvers = agent_def("bad-agent", "https://example.com/x",
                                 [{"tool": "http_request", "action": "approve"}])  # fmt: skip
        r = await s.http.put("/v1/definitions/bad-agent", json=no_approvers, headers=auth("k-wes"))
        assert r.status_code == 422, r.text
        assert "approvers" in r.text


async def test_weakening_a_policy_needs_its_approvers_or_admin(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    keys = [*KEYS, {"key": "k-root", "identity": "root",
                    "scopes": ["tasks:read", "tasks:write", "tasks:admin"]}]  # fmt: skip
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=keys) as s:
        held = agent_def("guarded", "https://example.com/x", [HOLD_OUTSIDE_POSTS])
        await put(s, held)
        lax = agent_def("guarded", "https://example.com/x", [])
        r = await s.http.put("/v1/definitions/guarded", json=lax, headers=auth("k-wes"))
        assert r.status_code == 403, r.text
        assert [p["field"] for p in r.json()["problems"]] == ["tool_policies[0]"]
        stricter = agent_def("guarded", "https://example.com/x",
                             [HOLD_OUTSIDE_POSTS, {"tool": "*", "action": "deny"}])  # fmt: skip
        r = await s.http.put("/v1/definitions/guarded", json=stricter, headers=auth("k-wes"))
        assert r.status_code == 201, r.text  # rules added after the stored ones
        r = await s.http.put("/v1/definitions/guarded", json=lax, headers=auth("k-wes"))
        assert r.status_code == 403, r.text  # the stored deny rule has no approvers
        r = await s.http.put("/v1/definitions/guarded", json=lax, headers=auth("k-root"))
        assert r.status_code == 201, r.text  # tasks:admin may
