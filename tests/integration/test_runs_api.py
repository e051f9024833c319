"""`/v1/runs` against a real gateway, worker and dev server (priority/fairness on)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from temporalio.testing import WorkflowEnvironment

from api.history import start_input
from tests.stack import Stack, run_stack
from worker.main import build_worker

T = TypeVar("T")

QUICK = {
    "id": "quick",
    "inputs": {"name": {"type": "string", "default": "Ada"}},
    "steps": [
        {"id": "say", "action": "llm_call", "label": "Say hi", "prompt": "Hi {{ input.name }}"},
        {"id": "tell", "action": "notify", "message": "said {{ steps.say.output }}"},
    ],
}
SLOW = {
    "id": "slow",
    "steps": [
        {"id": "nap", "action": "wait", "duration": "1h"},
        {"id": "say", "action": "llm_call", "prompt": "woke"},
    ],
}


async def eventually(
    fn: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float = 30
) -> T:
    """Poll `fn` until `ok(value)`: visibility and queries are eventually consistent."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fn()
        if ok(value) or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.2)


async def sa_status(stack: Stack, run_id: str) -> str | None:
    async for w in stack.client.list_workflows(f"WorkflowId = '{run_id}'"):
        return w.search_attributes.get("DurataskStatus", [None])[0]  # type: ignore[return-value]
    return None


async def state(stack: Stack, run_id: str) -> dict[str, Any]:
    r = await stack.http.get(f"/v1/runs/{run_id}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_start_run_and_read_full_state(stack: Stack) -> None:
    await stack.put_definition(QUICK)
    r = await stack.http.post("/v1/runs", json={"definition_id": "quick", "owner": "agent-1"})
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["status"] == "queued" and run["definition_version"] == 1
    assert run["created_at"] and run["input"] == {"name": "Ada"}
    result = await stack.wait_result(run["run_id"])
    assert result["done"] is True and result["result"]["message"] == "said Hi Ada"
    st = await state(stack, run["run_id"])
    assert st["status"] == "completed" and st["owner"] == "agent-1"
    assert [s["status"] for s in st["steps"]] == ["completed", "completed"]
    assert st["steps"][0]["output"] == "Hi Ada" and st["steps"][0]["duration_ms"] is not None
    assert [p["done"] for p in st["plan"]] == [True, True]
    assert st["progress"]["percent"] == 100
    for key in ("created_at", "started_at", "completed_at"):
        assert st[key], key
    assert st["duration_ms"] >= 0 and st["retry_count"] == 0 and st["execution_count"] == 1
    types = [e["type"] for e in st["events"]]
    assert types[:3] == ["run.created", "run.queued", "run.started"]
    assert {"step.started", "step.completed", "run.completed"} <= set(types)
    assert all(e["time"] for e in st["events"])
    assert (
        await eventually(lambda: sa_status(stack, run["run_id"]), lambda s: s == "completed")
        == "completed"
    )


async def test_status_search_attribute_follows_the_run(stack: Stack) -> None:
    await stack.put_definition(SLOW)
    run = await stack.start("slow")
    rid = run["run_id"]
    assert await eventually(lambda: sa_status(stack, rid), lambda s: s == "running") == "running"
    st = await eventually(lambda: state(stack, rid), lambda s: s["current_step"] == "nap")
    assert st["status"] == "running" and st["progress"]["current_step"] == "nap"
    assert st["steps"][0]["status"] == "running" and st["steps"][1]["status"] == "pending"
    r = await stack.http.post(f"/v1/runs/{rid}/cancel", json={"reason": "test over"})
    assert r.status_code == 202
    assert (
        await eventually(lambda: sa_status(stack, rid), lambda s: s == "cancelled") == "cancelled"
    )


async def test_idempotent_start(stack: Stack) -> None:
    await stack.put_definition(QUICK)
    req = {"definition_id": "quick", "idempotency_key": "order-42"}
    first = await stack.http.post("/v1/runs", json=req)
    second = await stack.http.post("/v1/runs", json=req)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["run_id"] == second.json()["run_id"]
    other = await stack.http.post("/v1/runs", json={**req, "idempotency_key": "order-43"})
    assert other.status_code == 201 and other.json()["run_id"] != first.json()["run_id"]


async def test_version_pin(stack: Stack) -> None:
    await stack.put_definition(QUICK)
    v2 = {**QUICK, "steps": [{"id": "say", "action": "llm_call", "prompt": "v2 {{ input.name }}"}]}
    await stack.put_definition(v2)
    old = await stack.start("quick", version=1)
    new = await stack.start("quick")
    assert old["definition_version"] == 1 and new["definition_version"] == 2
    assert (await stack.wait_result(old["run_id"]))["result"]["message"] == "said Hi Ada"
    assert (await stack.wait_result(new["run_id"]))["result"] == "v2 Ada"
    r = await stack.http.post("/v1/runs", json={"definition_id": "quick", "version": 7})
    assert r.status_code == 404


async def test_delayed_start(stack: Stack) -> None:
    await stack.put_definition(QUICK)
    at = datetime.now(UTC) + timedelta(seconds=3)
    r = await stack.http.post(
        "/v1/runs", json={"definition_id": "quick", "start_at": at.isoformat()}
    )
    assert r.status_code == 201, r.text
    rid = r.json()["run_id"]
    assert r.json()["status"] == "scheduled"
    st = await state(stack, rid)
    assert st["status"] == "scheduled" and st["scheduled_for"]
    assert await sa_status(stack, rid) == "scheduled"
    result = await stack.wait_result(rid, wait=60)
    assert result["status"] == "completed"
    started = datetime.fromisoformat(result["state"]["started_at"])
    assert started >= at - timedelta(milliseconds=500)
    types = [e["type"] for e in result["state"]["events"]]
    assert types[:4] == ["run.created", "run.scheduled", "run.queued", "run.started"]

    past = datetime.now(UTC) - timedelta(minutes=1)
    r = await stack.http.post(
        "/v1/runs", json={"definition_id": "quick", "start_at": past.isoformat()}
    )
    assert r.status_code == 422 and "past" in r.json()["detail"]


async def test_list_filters_and_pagination(stack: Stack) -> None:
    # the dev server is shared by every test: scope by ids unique to this test
    quick_id, slow_id = f"quick-{stack.task_queue}", f"slow-{stack.task_queue}"
    ann, bob = f"ann-{stack.task_queue}", f"bob-{stack.task_queue}"
    await stack.put_definition({**QUICK, "id": quick_id})
    await stack.put_definition({**SLOW, "id": slow_id})
    ids = [
        (await stack.start(quick_id, owner=ann))["run_id"],
        (await stack.start(quick_id, owner=bob))["run_id"],
        (await stack.start(quick_id, owner=ann, trigger="cli"))["run_id"],
    ]
    slow = (await stack.start(slow_id, owner=ann))["run_id"]
    for rid in ids:
        await stack.wait_result(rid)

    async def listing(**params: Any) -> list[str]:
        r = await stack.http.get("/v1/runs", params=params)
        assert r.status_code == 200, r.text
        return [i["run_id"] for i in r.json()["items"]]

    got = await eventually(lambda: listing(definition_id=quick_id), lambda x: len(x) == 3)
    assert set(got) == set(ids)
    got = await eventually(
        lambda: listing(definition_id=quick_id, owner=ann), lambda x: len(x) == 2
    )
    assert set(got) == {ids[0], ids[2]}
    got = await eventually(lambda: listing(trigger="cli", owner=ann), lambda x: len(x) == 1)
    assert got == [ids[2]]
    running = await eventually(lambda: listing(status="running", owner=ann), lambda x: x == [slow])
    assert running == [slow]
    done = await eventually(lambda: listing(status="completed", owner=ann), lambda x: len(x) == 2)
    assert set(done) == {ids[0], ids[2]}
    assert await listing(definition_id=quick_id, owner="nobody") == []

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params: dict[str, Any] = {"definition_id": quick_id, "page_size": 2}
        if token:
            params["page_token"] = token
        page = (await stack.http.get("/v1/runs", params=params)).json()
        seen += [i["run_id"] for i in page["items"]]
        pages += 1
        token = page["next_page_token"]
        if not token:
            break
    assert sorted(seen) == sorted(ids) and pages >= 2
    item = (await stack.http.get("/v1/runs", params={"owner": bob})).json()["items"][0]
    assert item["definition_id"] == quick_id and item["status"] == "completed"
    assert item["owner"] == bob and item["trigger"] == "api"
    await stack.http.post(f"/v1/runs/{slow}/cancel", json={"reason": "done"})


async def test_result_wait_202_then_cancel_with_reason(stack: Stack) -> None:
    await stack.put_definition(SLOW)
    rid = (await stack.start("slow"))["run_id"]
    r = await stack.http.get(f"/v1/runs/{rid}/result", params={"wait": 1})
    assert r.status_code == 202 and r.json()["done"] is False
    assert r.json()["status"] in ("queued", "running")
    r = await stack.http.post(f"/v1/runs/{rid}/cancel", json={"reason": "no longer needed"})
    assert r.status_code == 202 and r.json()["reason"] == "no longer needed"
    result = (await stack.http.get(f"/v1/runs/{rid}/result", params={"wait": 30})).json()
    assert result["status"] == "cancelled"
    st = await state(stack, rid)
    assert st["status"] == "cancelled" and st["cancel_reason"] == "no longer needed"
    assert st["error"]["code"] == "CANCELLED" and st["error"]["message"] == "no longer needed"
    assert st["steps"][0]["status"] == "cancelled"
    assert any(e["type"] == "run.cancelled" for e in st["events"])
    # cancelling again: 409 naming the status
    r = await stack.http.post(f"/v1/runs/{rid}/cancel", json={"reason": "again"})
    assert r.status_code == 409 and "cancelled" in r.json()["detail"]


async def test_cancel_completed_run_is_409(stack: Stack) -> None:
    await stack.put_definition(QUICK)
    rid = (await stack.start("quick"))["run_id"]
    await stack.wait_result(rid)
    r = await stack.http.post(f"/v1/runs/{rid}/cancel", json={"reason": "late"})
    assert r.status_code == 409 and "completed" in r.json()["detail"]
    r = await stack.http.patch(f"/v1/runs/{rid}", json={"priority": "high"})
    assert r.status_code == 409 and "completed" in r.json()["detail"]
    assert (await stack.http.post("/v1/runs/run-nope/cancel", json={})).status_code == 404
    assert (await stack.http.get("/v1/runs/run-nope")).status_code == 404


async def test_retry_with_changed_input(stack: Stack) -> None:
    await stack.put_definition(QUICK)
    first = await stack.start("quick", input={"name": "Ada"})
    await stack.wait_result(first["run_id"])
    # a newer version does not change what a retry runs
    await stack.put_definition(
        {**QUICK, "steps": [{"id": "x", "action": "llm_call", "prompt": "v2"}]}
    )
    r = await stack.http.post(f"/v1/runs/{first['run_id']}/retry", json={"input": {"name": "Bo"}})
    assert r.status_code == 201, r.text
    again = r.json()
    assert again["run_id"] != first["run_id"]
    assert again["retry_of"] == first["run_id"] and again["retry_count"] == 1
    assert again["definition_version"] == 1 and again["trigger"] == "retry"
    result = await stack.wait_result(again["run_id"])
    assert result["result"]["message"] == "said Hi Bo"
    assert result["state"]["retry_count"] == 1 and result["state"]["execution_count"] == 2
    r = await stack.http.post(f"/v1/runs/{first['run_id']}/retry", json={"input": {"name": 5}})
    assert r.status_code == 422 and "name" in r.json()["detail"]


async def test_retry_running_is_409(stack: Stack) -> None:
    await stack.put_definition(SLOW)
    rid = (await stack.start("slow"))["run_id"]
    r = await stack.http.post(f"/v1/runs/{rid}/retry", json={})
    assert r.status_code == 409 and "running" in r.json()["detail"]
    await stack.http.post(f"/v1/runs/{rid}/cancel", json={})


async def test_patch_priority(stack: Stack) -> None:
    await stack.put_definition(SLOW)
    rid = (await stack.start("slow", priority="low"))["run_id"]
    r = await stack.http.patch(f"/v1/runs/{rid}", json={"priority": "urgent"})
    assert r.status_code == 200 and r.json()["priority"] == "urgent"
    st = await eventually(lambda: state(stack, rid), lambda s: s["priority"] == "urgent")
    assert st["priority"] == "urgent"
    assert any(e["type"] == "run.priority_changed" for e in st["events"])
    r = await stack.http.patch(f"/v1/runs/{rid}", json={"priority": "whenever"})
    assert r.status_code == 422
    await stack.http.post(f"/v1/runs/{rid}/cancel", json={})


async def test_bulk_cancel_reports_per_id(stack: Stack) -> None:
    await stack.put_definition(SLOW)
    await stack.put_definition(QUICK)
    a = (await stack.start("slow"))["run_id"]
    b = (await stack.start("slow"))["run_id"]
    done = (await stack.start("quick"))["run_id"]
    await stack.wait_result(done)
    r = await stack.http.post(
        "/v1/runs/bulk-cancel", json={"run_ids": [a, b, done, "run-ghost"], "reason": "cleanup"}
    )
    assert r.status_code == 200, r.text
    by_id = {x["run_id"]: x for x in r.json()["results"]}
    assert r.json()["cancelled"] == 2
    assert by_id[a]["ok"] and by_id[b]["ok"]
    assert by_id[done]["status_code"] == 409 and "completed" in by_id[done]["detail"]
    assert by_id["run-ghost"]["status_code"] == 404
    for rid in (a, b):
        st = await eventually(partial(state, stack, rid), lambda s: s["status"] == "cancelled")
        assert st["status"] == "cancelled" and st["cancel_reason"] == "cleanup"


async def test_critical_run_overtakes_queued_low_runs(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """With one activity slot, a critical run started after several low ones runs first."""
    async with run_stack(
        dev_env,
        task_queue,
        tmp_path,
        worker=False,
        max_concurrent_activities=1,
        max_concurrent_workflow_tasks=2,
    ) as stack:
        await stack.put_definition(QUICK)
        lows = [(await stack.start("quick", priority="low"))["run_id"] for _ in range(4)]
        critical = (await stack.start("quick", priority="critical"))["run_id"]
        queued = await state(stack, critical)  # no worker yet: rebuilt from history
        assert queued["status"] == "queued" and queued["priority"] == "critical"
        assert await sa_status(stack, critical) == "queued"
        async with build_worker(stack.client, stack.settings, task_queue):
            states = [(await stack.wait_result(rid, wait=60))["state"] for rid in [*lows, critical]]
    assert all(s["status"] == "completed" for s in states)
    crit = states[-1]
    low_started = min(datetime.fromisoformat(s["started_at"]) for s in states[:-1])
    low_done = min(datetime.fromisoformat(s["completed_at"]) for s in states[:-1])
    assert datetime.fromisoformat(crit["started_at"]) <= low_started
    assert datetime.fromisoformat(crit["completed_at"]) <= low_done
    assert crit["priority"] == "critical"


async def test_run_gets_the_whole_bundle_and_failure_is_visible(stack: Stack) -> None:
    leaf = {"id": "leaf", "steps": [{"id": "x", "action": "llm_call", "prompt": "leaf"}]}
    await stack.put_definition(leaf)
    root = {
        "id": "root",
        "steps": [
            {"id": "bad", "action": "llm_call", "prompt": "{{ input.t.title }}"},
            {"id": "child", "action": "sub_task", "task": "leaf"},
        ],
    }
    await stack.put_definition(root)
    rid = (await stack.start("root", input={"t": {}}))["run_id"]
    handle = stack.client.get_workflow_handle(rid)
    inp = await start_input(stack.client, handle)
    assert inp.bundle is not None
    assert inp.bundle.root.definition.id == "root" and inp.bundle.root.version == 1
    assert set(inp.bundle.others) == {"leaf"} and inp.bundle.others["leaf"].version == 1
    result = await stack.wait_result(rid)
    assert result["status"] == "failed"
    assert result["error"]["code"] == "TEMPLATE_ERROR" and result["error"]["step_id"] == "bad"
    assert "input.t.title" in result["error"]["message"]
    st = await state(stack, rid)
    assert st["status"] == "failed" and st["steps"][0]["status"] == "failed"
    assert st["completed_at"] and st["steps"][1]["status"] == "pending"
    assert await eventually(lambda: sa_status(stack, rid), lambda s: s == "failed") == "failed"
    r = await stack.http.post(f"/v1/runs/{rid}/cancel", json={})
    assert r.status_code == 409 and "failed" in r.json()["detail"]


async def test_cancel_through_the_gateway_stops_the_in_flight_tool(stack: Stack) -> None:
    """A real `http_request` tool call to a server that never answers is cancelled."""
    connected, closed = asyncio.Event(), asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connected.set()
        while await reader.read(1024):  # never answer; returns b"" once the client hangs up
            pass
        closed.set()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await stack.put_definition(
            {
                "id": "hang",
                "tools": ["http_request"],
                "steps": [
                    {"id": "fetch", "action": "tool_call", "tool": "http_request",
                     "args": {"url": f"http://127.0.0.1:{port}/slow", "timeout_s": 120},
                     "retry": {"max_attempts": 1}},
                ],
            }
        )  # fmt: skip
        rid = (await stack.start("hang"))["run_id"]
        await asyncio.wait_for(connected.wait(), 30)
        r = await stack.http.post(f"/v1/runs/{rid}/cancel", json={"reason": "taking too long"})
        assert r.status_code == 202
        await asyncio.wait_for(closed.wait(), 30)  # the activity dropped its request
        result = await stack.wait_result(rid, wait=30)
    assert result["status"] == "cancelled"
    st = result["state"]
    assert st["steps"][0]["status"] == "cancelled" and st["cancel_reason"] == "taking too long"
