"""The agent loop against a real llama.cpp server, through the real gateway and worker.

SmolLM2-135M-Instruct on llama-cpp-python's OpenAI-compatible server, run plain and
with `--chat_format chatml-function-calling` (a 135M model rarely picks a tool by
itself, so the tool is forced with `tool_choice`). Cancel and steer latencies are
measured on the server's side of the connection, by a TCP proxy in front of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from duratask.settings import ModelEndpoint
from tests.realmodel.server import NO_EOS, ClosingProxy, Connection, LlamaServer, llama_server
from tests.stack import Stack, free_port, run_stack

pytestmark = pytest.mark.timeout(300)
CLOSE_WITHIN_S = 1.0
WEATHER = {"type": "function", "function": {"name": "get_weather"}}

TWO_STEP = {
    "id": "two-step",
    "inputs": {"name": {"type": "string", "required": True}},
    "model": {"max_tokens": 48, "temperature": 0, "on_length": "accept"},
    "steps": [
        {"id": "greet", "action": "llm_call",
         "prompt": "Say hello to {{ input.name }} in one short sentence."},
        {"id": "shout", "action": "llm_call",
         "prompt": "Repeat this in capital letters: {{ steps.greet.output }}"},
    ],
}  # fmt: skip
# a reply that runs to max_tokens (end-of-turn banned): long enough to steer or cancel
LONG = {"max_tokens": 400, "on_length": "accept", "options": NO_EOS}


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    proxy: ClosingProxy,
    fc_server: LlamaServer,
) -> AsyncIterator[Stack]:
    endpoints = {
        # no default_model: the endpoint's server says which model it serves
        "local": ModelEndpoint(kind="openai", base_url=proxy.url),
        "tools": ModelEndpoint(kind="openai", base_url=fc_server.url, default_model="smollm2"),
    }
    async with run_stack(
        dev_env, task_queue, tmp_path,
        model_endpoints=endpoints, default_endpoint="local", tool_modules=["tests.fakes.tools"],
    ) as s:  # fmt: skip
        yield s


async def finished(stack: Stack, run_id: str, timeout: float = 240) -> dict[str, Any]:
    """The run's final state (waits in slices: the test client's read timeout is 60 s)."""
    deadline = time.monotonic() + timeout
    while True:
        r = await stack.http.get(f"/v1/runs/{run_id}/result", params={"wait": 30})
        assert r.status_code in (200, 202), r.text  # 202: not ended yet
        result = r.json()
        if result["done"] or time.monotonic() > deadline:
            assert result["done"], f"run {run_id} still {result['status']}"
            return result["state"]  # type: ignore[no-any-return]


async def sse_events(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    """Every event of the run as the SSE stream delivers it, until the run ends."""
    events: list[dict[str, Any]] = []
    async with stack.http.stream("GET", f"/v1/runs/{run_id}/events", timeout=240) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("data:"):
                events.append({**json.loads(line[5:]), "_seen_at": time.monotonic()})
    return events


async def streaming_connection(proxy: ClosingProxy, timeout: float = 120) -> Connection:
    """The proxied connection a model reply is streaming on right now."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = {id(c): c.bytes_down for c in proxy.open_streams()}
        await asyncio.sleep(0.3)
        for c in proxy.open_streams():
            if id(c) in before and c.bytes_down > before[id(c)] and c.bytes_down > 2000:
                return c
    raise AssertionError("no model reply started streaming")


async def closed_after(conn: Connection, since: float) -> float:
    for _ in range(200):
        if conn.closed_at is not None:
            return conn.closed_at - since
        await asyncio.sleep(0.02)
    raise AssertionError("the model stream was never closed")


async def test_two_step_run_streams_live_over_sse_with_usage(stack: Stack) -> None:
    await stack.put_definition(TWO_STEP)
    run_id = (await stack.start("two-step", input={"name": "Ada"}))["run_id"]
    events = await sse_events(stack, run_id)
    types = [e["type"] for e in events]
    assert types[-1] == "run.completed", types
    for step in ("greet", "shout"):
        deltas = [
            i for i, e in enumerate(events) if e["type"] == "llm.delta" and e["step_id"] == step
        ]
        done = types.index("step.completed", types.index("step.started"))
        assert deltas, f"no streamed text for {step}"
        completed = next(
            i for i, e in enumerate(events)
            if e["type"] == "step.completed" and e["step_id"] == step
        )  # fmt: skip
        assert deltas[0] < completed and done >= 0  # text arrived before the step ended
    state = await finished(stack, run_id)
    assert state["status"] == "completed"
    assert all(s["output"] for s in state["steps"])
    usage = state["usage"]  # real, or an estimate that says so
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["estimated"] in (True, False)
    completed_events = [e for e in events if e["type"] == "llm.completed"]
    assert all(e["data"]["input_tokens"] > 0 for e in completed_events)
    assert all("usage_estimated" in e["data"] for e in completed_events)


async def test_run_start_follow_streams_the_model_text(stack: Stack, tmp_path: Path) -> None:
    await stack.put_definition(TWO_STEP)
    env = {**os.environ, "DURATASK_PUBLIC_URL": stack.url}
    env.pop("DURATASK_TOKEN", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "run", "start", "two-step", "-i", "name=Ada",
        "--follow", "--plain",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    text = out.decode()
    assert proc.returncode == 0, text + err.decode()
    assert "greet>" in text and "shout>" in text  # the streamed model text, per step
    assert "run.completed" in text
    assert "out tokens" in text  # usage per call: real, or marked "(estimated)"


async def test_agent_runs_the_tool_as_an_activity_and_stops_at_max_steps(stack: Stack) -> None:
    body = {
        "id": "weather",
        "tools": ["get_weather"],
        "steps": [{
            "id": "ask", "action": "llm_call", "prompt": "What is the weather in Paris?",
            "model": {"endpoint": "tools", "max_tokens": 64, "temperature": 0,
                      "options": {"tool_choice": WEATHER}},
            "max_steps": 2,
        }],
    }  # fmt: skip
    await stack.put_definition(body)
    run_id = (await stack.start("weather"))["run_id"]
    state = await finished(stack, run_id)
    assert state["status"] == "failed"
    assert state["error"]["code"] == "MAX_STEPS_EXCEEDED", state["error"]
    tools = [e for e in state["events"] if e["type"] == "run.tool_completed"]
    assert tools and all(e["data"]["tool"] == "get_weather" and not e["data"]["error"]
                         for e in tools)  # fmt: skip
    # the second model call got the assistant turn and the tool's result, and took them
    assert len([e for e in state["events"] if e["type"] == "llm.completed"]) == 2
    conversation = state["steps"][0]["conversation"]
    tool_msg = next(m for m in conversation if m["role"] == "tool")
    assert tool_msg["tool_call_id"] and '"temp_c": 21' in tool_msg["content"]
    handle = stack.client.get_workflow_handle(run_id)
    activities = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert activities.count("duratask.tool.call") >= 1


async def test_steer_mid_stream_closes_the_model_stream_within_1s(
    stack: Stack, proxy: ClosingProxy
) -> None:
    body = {"id": "long", "model": LONG,
            "steps": [{"id": "tell", "action": "llm_call", "prompt": "Tell a long story."}]}  # fmt: skip
    await stack.put_definition(body)
    run_id = (await stack.start("long"))["run_id"]
    conn = await streaming_connection(proxy)
    steered_at = time.monotonic()
    r = await stack.http.post(
        f"/v1/runs/{run_id}/messages", json={"mode": "steer", "message": "Stop. Say OK."}
    )
    assert r.status_code == 202, r.text
    latency = await closed_after(conn, steered_at)
    print(f"steer: model stream closed {latency:.3f}s after the request")
    assert latency < CLOSE_WITHIN_S
    state = await finished(stack, run_id)
    assert state["status"] == "completed", state["error"]
    assert any(e["type"] == "llm.steered" for e in state["events"])
    conversation = state["steps"][0]["conversation"]
    assert any(m["role"] == "user" and m["content"] == "Stop. Say OK." for m in conversation)


async def test_cancel_mid_stream_closes_the_model_stream_within_1s(
    stack: Stack, proxy: ClosingProxy, capfd: pytest.CaptureFixture[str]
) -> None:
    body = {"id": "long", "model": LONG,
            "steps": [{"id": "tell", "action": "llm_call", "prompt": "Tell a long story."}]}  # fmt: skip
    await stack.put_definition(body)
    run_id = (await stack.start("long"))["run_id"]
    conn = await streaming_connection(proxy)
    capfd.readouterr()
    cancelled_at = time.monotonic()
    r = await stack.http.post(f"/v1/runs/{run_id}/cancel", json={"reason": "enough"})
    assert r.status_code == 202, r.text
    latency = await closed_after(conn, cancelled_at)
    assert latency < CLOSE_WITHIN_S
    state = await finished(stack, run_id)
    assert state["status"] == "cancelled"
    await asyncio.sleep(1)  # what the worker logs after the cancel
    logs = capfd.readouterr()
    assert "Traceback" not in logs.out + logs.err
    print(f"cancel: model stream closed {latency:.3f}s after the request")


async def test_model_server_stopped_mid_run_and_restarted(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    port = free_port()
    async with llama_server(tmp_path, port=port) as server:
        proxy = ClosingProxy(port)
        await proxy.start()
        endpoints = {"local": ModelEndpoint(kind="openai", base_url=proxy.url,
                                            default_model="smollm2")}  # fmt: skip
        retry = {"max_attempts": 30, "initial_interval": "1s", "max_interval": "2s"}
        body = {
            "id": "restart",
            "steps": [
                {"id": "long", "action": "llm_call", "prompt": "Tell a story.",
                 "model": {**LONG, "max_tokens": 200}, "retry": retry},
                {"id": "short", "action": "llm_call", "prompt": "Say OK.",
                 "model": {"max_tokens": 8, "on_length": "accept"}, "retry": retry},
            ],
        }  # fmt: skip
        async with run_stack(
            dev_env, task_queue, tmp_path, model_endpoints=endpoints, default_endpoint="local"
        ) as stack:
            await stack.put_definition(body)
            run_id = (await stack.start("restart"))["run_id"]
            await streaming_connection(proxy)
            await server.stop()  # the model server goes away mid-reply
            await asyncio.sleep(2)
            await server.start()  # and comes back on the same port
            state = await finished(stack, run_id)
            attempts = [
                e.activity_task_started_event_attributes.attempt
                async for e in stack.client.get_workflow_handle(run_id).fetch_history_events()
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            ]
        await proxy.close()
    assert state["status"] == "completed", state["error"]
    assert [s["status"] for s in state["steps"]] == ["completed", "completed"]
    assert max(attempts) >= 2  # the call broken by the restart was retried


async def test_context_overflow_fails_the_step_with_a_clear_code(stack: Stack) -> None:
    """llama.cpp answers a prompt past its context window with an empty 200 stream."""
    body = {"id": "overflow", "steps": [{
        "id": "ask", "action": "llm_call", "retry": {"max_attempts": 1},
        "prompt": "Repeat after me. " + "The quick brown fox jumps over the lazy dog. " * 300,
    }]}  # fmt: skip
    await stack.put_definition(body)
    run_id = (await stack.start("overflow"))["run_id"]
    state = await finished(stack, run_id)
    assert state["status"] == "failed"
    assert state["error"]["code"] == "MODEL_EMPTY_REPLY", state["error"]
