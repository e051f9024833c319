"""Live run events over real HTTP: SSE and JSON from the gateway, a real worker, the dev server.

Each test follows a run through `GET /v1/runs/{id}/events` with an SSE client
(httpx-sse) the way a browser or `duratask run watch` does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from tests.stack import Stack, run_stack

TERMINAL = {"run.completed", "run.failed", "run.cancelled"}

AGENT = {
    "id": "agent",
    "tools": ["notify"],
    "model": {
        "provider": "scripted",
        "name": "script",
        "script": [
            {
                "delay": 1.0,
                "tool_calls": [{"name": "notify", "arguments": {"message": "checking in"}}],
            },
            {"text": "All done: the notification went out to the team as asked."},
            {"text": "Merged the collected note as well."},
        ],
    },
    "steps": [
        {"id": "work", "action": "llm_call", "prompt": "Tell the team."},
        {"id": "route", "action": "conditional", "condition": "false", "then": "never",
         "else": "wrap"},
        {"id": "never", "action": "tool_call", "tool": "notify", "args": {"message": "no"}},
        {"id": "wrap", "action": "tool_call", "tool": "notify",
         "args": {"message": "{{ steps.work.output }}"}},
    ],
}  # fmt: skip

SLOW = {
    "id": "slow",
    "model": {
        "provider": "scripted",
        "name": "script",
        "script": [{"delay": 0.4, "text": "one two three four five"}],
    },
    # each step is its own conversation, so each plays the script's first reply
    "steps": [{"id": f"s{i}", "action": "llm_call", "prompt": f"step {i}"} for i in range(4)],
}


async def sse_events(
    http: httpx.AsyncClient, run_id: str, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """(id, type, payload) for each SSE event until the server ends the stream."""
    async with aconnect_sse(
        http, "GET", f"/v1/runs/{run_id}/events", params=params, headers=dict(headers or {})
    ) as source:
        assert source.response.status_code == 200, await source.response.aread()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        async for sse in source.aiter_sse():
            yield sse.id, sse.event, json.loads(sse.data)


async def collect(http: httpx.AsyncClient, run_id: str, **kw: Any) -> list[dict[str, Any]]:
    out = []
    async for sse_id, kind, data in sse_events(http, run_id, **kw):
        assert kind != "error", data
        # a token delta's id is `<offset of the durable event before it>.<relay id>`
        live_only = kind in ("llm.delta", "llm.retry")
        offset = str(data["offset"])
        assert sse_id == offset or (live_only and sse_id.startswith(f"{offset}.")), sse_id
        assert kind == data["type"]
        out.append(data)
    return out


def assert_contiguous(events: list[dict[str, Any]], first: int = 0) -> None:
    """The durable events' offsets run without gap (token deltas are live-only, no id)."""
    offsets = [e["offset"] for e in events if e["type"] not in ("llm.delta", "llm.retry")]
    assert offsets == list(range(first, first + len(offsets))), offsets


async def json_all(http: httpx.AsyncClient, run_id: str, limit: int = 500) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after = -1
    for _ in range(100):
        r = await http.get(
            f"/v1/runs/{run_id}/events",
            params={"after": after, "limit": limit},
            headers={"Accept": "application/json"},
        )
        assert r.status_code == 200, r.text
        page = r.json()
        events += page["events"]
        after = page["next_after"]
        if page["done"]:
            return events
        if not page["more"]:
            await asyncio.sleep(0.2)
    raise AssertionError("JSON polling never reached the end of the run")


async def test_all_event_types_of_a_run_with_tools(stack: Stack) -> None:
    await stack.put_definition(AGENT)
    run = await stack.start("agent")
    run_id = run["run_id"]
    events: list[dict[str, Any]] = []

    async def follow() -> None:
        async for _, kind, data in sse_events(stack.http, run_id):
            events.append(data)
            if kind == "step.started" and data["step_id"] == "work":
                r = await stack.http.post(
                    f"/v1/runs/{run_id}/messages",
                    json={"mode": "collect", "message": "also mention the release"},
                )
                assert r.status_code == 202, r.text

    await asyncio.wait_for(follow(), 60)
    types = [e["type"] for e in events]
    assert types[:3] == ["run.created", "run.queued", "run.started"]
    assert types[-1] == "run.completed"
    assert set(types) >= {
        "run.queued", "run.started", "step.started", "step.completed", "step.skipped",
        "run.tool_requested", "run.tool_completed", "llm.delta", "llm.completed",
        "intervention.received", "progress", "run.completed",
    }  # fmt: skip
    assert_contiguous(events)
    for e in events:
        assert e["run_id"] == run_id and e["time"]
    # tokens: the streamed text is the model's answers, in order, before each llm.completed
    text = "".join(e["data"]["text"] for e in events if e["type"] == "llm.delta")
    assert "All done: the notification went out" in text
    assert "Merged the collected note" in text
    completed = [e for e in events if e["type"] == "llm.completed"]
    assert completed[0]["data"]["tool_calls"] == 1
    assert all("output_tokens" in e["data"] for e in completed)
    skipped = [e["step_id"] for e in events if e["type"] == "step.skipped"]
    assert skipped == ["never"]
    tools = [e for e in events if e["type"] == "run.tool_requested"]
    assert [t["step_id"] for t in tools] == ["work", "wrap"]
    # the interpreter's own record agrees with the stream (minus stream-only events)
    state = (await stack.http.get(f"/v1/runs/{run_id}")).json()
    recorded = [e["type"] for e in state["events"]]
    assert recorded == [t for t in types if t != "llm.delta"]


async def test_failed_run_and_retried_model_call_are_marked(stack: Stack) -> None:
    flaky = {
        "id": "flaky",
        "model": {"provider": "scripted", "name": "script",
                  "script": [{"error": {"message": "upstream 503", "status": 503}}]},
        "steps": [{"id": "ask", "action": "llm_call", "prompt": "hi",
                   "retry": {"max_attempts": 2, "initial_interval": "100ms"}}],
    }  # fmt: skip
    await stack.put_definition(flaky)
    run = await stack.start("flaky")
    events = await asyncio.wait_for(collect(stack.http, run["run_id"]), 60)
    types = [e["type"] for e in events]
    assert types[-1] == "run.failed"
    assert "step.failed" in types
    retry = [e for e in events if e["type"] == "llm.retry"]
    assert len(retry) == 1 and retry[0]["data"]["attempt"] == 2
    assert retry[0]["step_id"] == "ask"


async def test_last_event_id_resume_after_forced_disconnect(stack: Stack) -> None:
    await stack.put_definition(SLOW)
    run = await stack.start("slow")
    run_id = run["run_id"]
    first: list[dict[str, Any]] = []
    # read up to the first token delta, then drop the connection mid-run
    seen = ""
    async for sse_id, kind, data in sse_events(stack.http, run_id):
        first.append(data)
        seen = sse_id
        if kind == "llm.delta":
            break
    assert "." in seen  # a delta's id: `<offset before it>.<relay id>`
    last_id = first[-1]["offset"]
    rest = await asyncio.wait_for(collect(stack.http, run_id, headers={"Last-Event-ID": seen}), 60)
    assert rest[0]["offset"] == last_id + 1 and rest[0]["type"] != "llm.delta"
    # every token delta once: the reconnect did not repeat the one already seen
    text = "".join(e["data"]["text"] for e in first + rest if e["type"] == "llm.delta")
    assert text == "one two three four five " * 4
    # the reconnect reused the run's one subscription (it lingers briefly after a drop)
    stats = (await stack.http.get("/v1/streams")).json()
    assert stats["subscriptions_started"] == 1, stats
    joined = first + rest
    assert_contiguous(joined)
    assert joined[-1]["type"] == "run.completed"
    # `?after=` resumes the same way, and Last-Event-ID wins over it on a reconnect
    again = await collect(stack.http, run_id, headers={"Last-Event-ID": "2"}, after=0)
    durable = [e for e in joined if e["type"] != "llm.delta"]
    assert again == durable[3:]  # a finished run replays its durable events only
    assert await collect(stack.http, run_id, after=last_id) == [
        e for e in rest if e["type"] != "llm.delta"
    ]


async def test_closed_run_replayed_filtered_and_polled_as_json(stack: Stack) -> None:
    await stack.put_definition(SLOW)
    run = await stack.start("slow")
    run_id = run["run_id"]
    assert (await stack.wait_result(run_id))["status"] == "completed"
    replay = await asyncio.wait_for(collect(stack.http, run_id), 30)
    assert_contiguous(replay)
    assert replay[0]["type"] == "run.created" and replay[-1]["type"] == "run.completed"
    assert sum(1 for e in replay if e["type"] == "step.completed") == 4
    # a filter keeps the SSE ids = offsets, and the stream still ends at the terminal event
    steps = await collect(stack.http, run_id, types="step.*,run.completed")
    assert {e["type"] for e in steps} == {"step.started", "step.completed", "run.completed"}
    assert [e for e in replay if e["type"] in {e2["type"] for e2 in steps}] == steps
    # JSON polling: the same events, page by page
    polled = await json_all(stack.http, run_id, limit=7)
    assert polled == replay
    r = await stack.http.get(
        f"/v1/runs/{run_id}/events",
        params={"after": replay[-1]["offset"]},
        headers={"Accept": "application/json"},
    )
    assert r.json()["events"] == [] and r.json()["done"] is True


async def test_json_polling_while_running(stack: Stack) -> None:
    await stack.put_definition(SLOW)
    run = await stack.start("slow")
    events = await asyncio.wait_for(json_all(stack.http, run["run_id"]), 60)
    assert_contiguous(events)
    assert events[-1]["type"] == "run.completed"


async def test_unknown_run_and_bad_cursor(stack: Stack) -> None:
    r = await stack.http.get("/v1/runs/run-nope/events")
    assert r.status_code == 404 and "run-nope" in r.json()["detail"]
    r = await stack.http.get("/v1/runs/run-nope/events", headers={"Accept": "application/json"})
    assert r.status_code == 404
    await stack.put_definition(SLOW)
    run = await stack.start("slow")
    r = await stack.http.get(f"/v1/runs/{run['run_id']}/events", headers={"Last-Event-ID": "abc"})
    assert r.status_code == 422 and "Last-Event-ID" in r.json()["detail"]


async def test_fifty_clients_share_one_subscription(stack: Stack) -> None:
    await stack.put_definition(SLOW)
    run = await stack.start("slow")
    run_id = run["run_id"]
    limits = httpx.Limits(max_connections=80)
    async with httpx.AsyncClient(base_url=stack.url, timeout=60, limits=limits) as http:
        results = await asyncio.wait_for(
            asyncio.gather(*(collect(http, run_id) for _ in range(50))), 90
        )
    for events in results:
        assert events == results[0]
    assert_contiguous(results[0])
    assert results[0][-1]["type"] == "run.completed"
    stats = (await stack.http.get("/v1/streams")).json()
    assert stats["subscriptions_started"] == 1, stats
    assert stats["clients_served"] == 50
    # Temporal saw one subscriber's polls (each a Workflow Update), not fifty subscribers'
    polls = 0
    async for ev in stack.client.get_workflow_handle(run_id).fetch_history_events():
        if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            polls += 1
    assert 1 <= polls < 50, polls


@pytest.mark.parametrize("keepalive", [0.2])
async def test_keepalive_comments_while_idle(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, keepalive: float
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, events_keepalive_s=keepalive) as stack:
        await stack.put_definition(
            {"id": "idle", "steps": [{"id": "nap", "action": "wait", "duration": "1500ms"}]}
        )
        run = await stack.start("idle")
        chunks = []
        async with stack.http.stream("GET", f"/v1/runs/{run['run_id']}/events") as resp:
            async for chunk in resp.aiter_text():
                chunks.append(chunk)
        body = "".join(chunks)
        assert body.count(": keep-alive") >= 3
        assert body.rstrip().endswith("}") and "event: run.completed" in body


async def test_gateway_shutdown_ends_open_streams(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """A watcher must not hold a gateway open: shutdown ends its stream (it reconnects)."""
    async with httpx.AsyncClient(timeout=60) as browser:
        bodies: list[str] = []
        watching = asyncio.Event()  # the watcher has its first events: the stream is open

        async def watch(url: str, run_id: str) -> None:
            chunks: list[str] = []
            async with browser.stream("GET", f"{url}/v1/runs/{run_id}/events") as resp:
                async for chunk in resp.aiter_text():
                    chunks.append(chunk)
                    if "event: step.started" in "".join(chunks):
                        watching.set()
            bodies.append("".join(chunks))

        async def stack_life() -> asyncio.Task[None]:
            async with run_stack(dev_env, task_queue, tmp_path) as stack:
                await stack.put_definition(
                    {"id": "idle", "steps": [{"id": "nap", "action": "wait", "duration": "1h"}]}
                )
                run = await stack.start("idle")
                task = asyncio.create_task(watch(stack.url, run["run_id"]))
                await asyncio.wait_for(watching.wait(), 60)
            return task

        task = await asyncio.wait_for(stack_life(), 120)
        await asyncio.wait_for(task, 60)  # ended by the shutdown, not by the run (1 h wait)
    assert "event: step.started" in bodies[0] and "run.completed" not in bodies[0]


class FlakyStreamer:
    """A model that streams half an answer and fails on its first attempt, then succeeds."""

    name = "flaky-stream"

    async def complete(self, req: Any, tools: Any, on_delta: Any = None) -> Any:
        from temporalio import activity

        from activities.llm.base import ProviderError
        from workflows.models import LlmResponse

        first = activity.info().attempt == 1
        words = ["partial ", "answer ", "that "] if first else ["the ", "final ", "answer"]
        for w in words:
            await on_delta(w)
            await asyncio.sleep(0.05)
        if first:
            raise ProviderError("connection reset mid-stream", status=502)
        return LlmResponse(text="".join(words), finish_reason="stop")


async def test_retried_model_call_marks_its_partial_text_for_discarding(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from io import StringIO

    from rich.console import Console

    from activities.llm import activity as llm_activity
    from cli.watch import RunView

    monkeypatch.setitem(llm_activity.PROVIDERS, "flaky-stream", lambda _s: FlakyStreamer())
    await stack.put_definition(
        {
            "id": "flaky-stream",
            "model": {"provider": "flaky-stream", "name": "x"},
            "steps": [
                {
                    "id": "ask",
                    "action": "llm_call",
                    "prompt": "hi",
                    "retry": {"max_attempts": 3, "initial_interval": "100ms"},
                },
            ],
        }
    )
    run = await stack.start("flaky-stream")
    events = await asyncio.wait_for(collect(stack.http, run["run_id"]), 60)
    kinds = [(e["type"], e["data"].get("attempt")) for e in events if e["type"].startswith("llm.")]
    assert kinds[0] == ("llm.delta", 1)
    retry_at = kinds.index(("llm.retry", 2))
    assert all(k == ("llm.delta", 2) for k in kinds[retry_at + 1 : -1])
    assert kinds[-1][0] == "llm.completed"
    first_text = "".join(e["data"]["text"] for e in events
                         if e["type"] == "llm.delta" and e["data"]["attempt"] == 1)  # fmt: skip
    assert first_text == "partial answer that "
    # a consumer that honours the marker shows only the final attempt's text
    state = (await stack.http.get(f"/v1/runs/{run['run_id']}")).json()
    view = RunView.from_state(state)
    shown = ""
    for e in events:
        view.apply(e)
        if e["type"] == "llm.completed":
            shown = view.text
    assert shown == "the final answer"
    assert view.status == "completed" and view.percent == 100
    console = Console(file=StringIO(), width=100)
    console.print(view.render())
    assert "☑" in console.file.getvalue()  # type: ignore[attr-defined]


async def test_cancelled_run_ends_the_stream(stack: Stack) -> None:
    await stack.put_definition(
        {"id": "long", "steps": [{"id": "nap", "action": "wait", "duration": "1h"}]}
    )
    run = await stack.start("long")
    run_id = run["run_id"]
    events: list[dict[str, Any]] = []

    async def follow() -> None:
        async for _, kind, data in sse_events(stack.http, run_id):
            events.append(data)
            if kind == "step.started":
                r = await stack.http.post(f"/v1/runs/{run_id}/cancel", json={"reason": "enough"})
                assert r.status_code == 202, r.text

    await asyncio.wait_for(follow(), 60)
    assert events[-1]["type"] == "run.cancelled" and events[-1]["message"] == "enough"
    assert_contiguous(events)


PLANNER = {
    "id": "planner",
    "tools": ["plan"],
    "model": {
        "provider": "scripted",
        "name": "script",
        "script": [
            {"tool_calls": [{"name": "plan", "arguments": {"items": ["draft", "publish"]}}]},
            {"tool_calls": [{"name": "plan", "arguments": {"done": [1, 2]}}]},
            {"text": "Drafted and ready to publish."},
        ],
    },
    "steps": [
        {"id": "draft", "action": "llm_call", "prompt": "Draft the release note."},
        {"id": "sign_off", "action": "approval", "approvers": ["local"], "timeout": "1h"},
        {"id": "publish", "action": "sub_task", "task": "publisher",
         "input": {"text": "{{ steps.draft.output }}"}},
    ],
}  # fmt: skip

PUBLISHER = {
    "id": "publisher",
    "inputs": {"text": {"type": "string", "required": True}},
    "steps": [{"id": "post", "action": "notify", "message": "published: {{ input.text }}"}],
}


async def test_plan_approval_and_child_events_on_the_stream(stack: Stack) -> None:
    """The parent's stream shows the plan, the approval it waits for and its child; the
    child's own events are on the child's stream."""
    await stack.put_definition(PUBLISHER)
    await stack.put_definition(PLANNER)
    run_id = (await stack.start("planner"))["run_id"]
    events: list[dict[str, Any]] = []
    async for _, kind, data in sse_events(stack.http, run_id):
        events.append(data)
        if kind == "run.awaiting_approval":
            r = await stack.http.post(
                f"/v1/runs/{run_id}/approvals", json={"decision": "approve", "comment": "go"}
            )
            assert r.status_code == 200, r.text
    assert_contiguous(events)
    types = [e["type"] for e in events]
    assert types[-1] == "run.completed"
    for expected in (
        "plan.updated",
        "run.awaiting_approval",
        "approval.decided",
        "child.started",
        "child.completed",
        "llm.completed",
        "progress",
    ):  # fmt: skip  (the plan tool runs in the workflow: no
        # run.tool_* events; test_all_event_types_of_a_run_with_tools covers those)
        assert expected in types, expected
    plans = [e["data"] for e in events if e["type"] == "plan.updated"]
    assert plans, types
    decided = next(e for e in events if e["type"] == "approval.decided")
    assert decided["step_id"] == "sign_off" and "approve" in json.dumps(decided["data"])
    assert types.index("approval.decided") < types.index("child.started")
    child = next(e for e in events if e["type"] == "child.started")
    child_id = f"{run_id}/publish"
    assert child_id in json.dumps(child["data"])
    child_events = await collect(stack.http, child_id)
    child_types = [e["type"] for e in child_events]
    assert child_types[0] == "run.created" and child_types[-1] == "run.completed"
    assert all(e["run_id"] == child_id for e in child_events)
    assert "step.completed" in child_types
