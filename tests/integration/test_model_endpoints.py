"""Named model endpoints, model-settings merging, and the replies real servers give.

Through the real gateway and worker on the dev server, against the fake OpenAI server:
replays of transcripts recorded from a real llama.cpp server (tests/fakes/transcripts)
and the failures a real server cannot be made to give on demand (a 500 that repeats).
The real server itself is exercised in tests/realmodel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from duratask.settings import ModelEndpoint
from tests.fakes.openai_server import LISTED_MODEL, FakeLlmServer, serve_fake_llm
from tests.stack import Stack, free_port, run_stack

KEY = "sk-local-DO-NOT-LEAK-1234"
ONE_TRY = {"max_attempts": 1}


@pytest.fixture
async def fake() -> AsyncIterator[FakeLlmServer]:
    async with serve_fake_llm() as f:
        yield f


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, fake: FakeLlmServer
) -> AsyncIterator[Stack]:
    endpoints = {
        "local": ModelEndpoint(kind="openai", base_url=f"{fake.url}/v1"),
        "hosted": ModelEndpoint(
            kind="openai",
            base_url=f"{fake.url}/v1",
            api_key=SecretStr(KEY),
            default_model="text",
            prices={"text": (2.0, 4.0)},
        ),
        "down": ModelEndpoint(kind="openai", base_url=f"http://127.0.0.1:{free_port()}/v1"),
    }
    async with run_stack(
        dev_env, task_queue, tmp_path,
        model_endpoints=endpoints, default_endpoint="local",
        tool_modules=["tests.fakes.tools"],
    ) as s:  # fmt: skip
        yield s


def llm_step(id: str = "ask", **extra: Any) -> dict[str, Any]:
    return {"id": id, "action": "llm_call", "prompt": f"hello from {id}", **extra}


async def run(stack: Stack, body: dict[str, Any], **start: Any) -> dict[str, Any]:
    await stack.put_definition(body)
    started = await stack.start(body["id"], **start)
    result = await stack.wait_result(started["run_id"], wait=60)
    assert result["done"], result
    return result["state"]  # type: ignore[no-any-return]


async def test_step_model_merges_field_by_field_after_the_store(
    stack: Stack, fake: FakeLlmServer
) -> None:
    """Issue 12 (3): once saved and read back, a step that set only `max_tokens` lost the
    definition's model (and called the default one)."""
    body = {
        "id": "merge",
        "model": {"endpoint": "hosted", "name": "text", "temperature": 0.3},
        "steps": [llm_step("one", model={"max_tokens": 77}), llm_step("two")],
    }
    state = await run(stack, body, model={"top_p": 0.5})
    assert state["status"] == "completed", state["error"]
    one, two = fake.requests[-2].body, fake.requests[-1].body
    assert (one["model"], one["max_tokens"], one["temperature"], one["top_p"]) == (
        "text", 77, 0.3, 0.5,
    )  # fmt: skip
    assert (two["model"], two["temperature"], two["top_p"]) == ("text", 0.3, 0.5)
    assert "max_tokens" not in two
    assert fake.requests[-1].headers["authorization"] == f"Bearer {KEY}"


async def test_default_model_follows_the_endpoint_side_by_side(
    stack: Stack, fake: FakeLlmServer
) -> None:
    """Issue 12 (8): with only a base URL the model was `gpt-4o-mini` at OpenAI's prices."""
    body = {
        "id": "sides",
        "steps": [llm_step("local"), llm_step("hosted", model={"endpoint": "hosted"})],
    }
    state = await run(stack, body)
    assert state["status"] == "completed", state["error"]
    local, hosted = fake.requests[-2], fake.requests[-1]
    assert local.body["model"] == LISTED_MODEL  # the first model the server lists
    assert local.headers["authorization"] != f"Bearer {KEY}"
    assert hosted.body["model"] == "text"  # the endpoint's default_model
    steps = {s["id"]: s for s in state["steps"]}
    assert steps["local"]["usage"]["cost_usd"] == 0  # a local server is not priced as OpenAI
    hosted_usage = steps["hosted"]["usage"]
    assert hosted_usage["cost_usd"] == pytest.approx((1000 * 2.0 + 500 * 4.0) / 1e6)


async def test_connection_error_names_the_endpoint_and_the_cause(stack: Stack) -> None:
    body = {"id": "down", "steps": [llm_step(model={"endpoint": "down", "name": "m"},
                                              retry=ONE_TRY)]}  # fmt: skip
    state = await run(stack, body)
    error = state["error"]
    assert state["status"] == "failed" and error["code"] == "CONNECTION_ERROR"
    port = stack.settings.endpoints()["down"].base_url
    assert "endpoint 'down'" in error["message"] and str(port) in error["message"]
    assert "Connect" in error["message"] and "refused" in error["message"].lower()


async def test_unknown_endpoint_fails_the_step_with_the_known_ones(stack: Stack) -> None:
    state = await run(stack, {"id": "nope", "steps": [llm_step(model={"endpoint": "nope"})]})
    assert state["error"]["code"] == "UNKNOWN_ENDPOINT"
    assert "local" in state["error"]["message"] and "hosted" in state["error"]["message"]


async def test_a_repeating_500_stops_after_a_bounded_number_of_tries(
    stack: Stack, fake: FakeLlmServer
) -> None:
    """Issue 12 (8): a 500 for a request the server cannot take burned every retry (5)."""
    body = {
        "id": "broken",
        "steps": [
            llm_step(model={"name": "broken"},
                     retry={"max_attempts": 10, "initial_interval": 0.1, "max_interval": 0.2})
        ],
    }  # fmt: skip
    state = await run(stack, body)
    assert state["status"] == "failed"
    assert fake.counts["broken"] == 3
    message = state["error"]["message"]
    assert "3 times" in message and "llama_decode failed" in message


async def test_assistant_tool_turn_is_accepted_and_parallel_calls_run(
    stack: Stack, fake: FakeLlmServer
) -> None:
    """Issue 12 (1): the assistant turn with tool calls went back as `content: null`,
    which llama.cpp answers with HTTP 500 (the fake answers the same)."""
    body = {"id": "tools", "tools": ["add"], "steps": [llm_step(model={"name": "tools"})]}
    state = await run(stack, body)
    assert state["status"] == "completed", state["error"]
    assert state["result"] == 'sums: {"sum": 5.0}, {"sum": 30.0}'
    sent = fake.requests[-1].body["messages"]
    assistant = next(m for m in sent if m["role"] == "assistant")
    assert assistant["content"] == "" and len(assistant["tool_calls"]) == 2
    tool_msgs = [m for m in sent if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_msgs] == ["call_a", "call_b"]


async def test_llamacpp_streamed_tool_call_is_assembled_once(stack: Stack) -> None:
    """Issue 12 (2): llama.cpp repeats the function name in every chunk; joined, it was
    refused as "not allowed". Replays a recorded llama.cpp stream."""
    model = {"name": "replay-llamacpp_tool_call"}
    body = {"id": "weather", "tools": ["get_weather"],
            "steps": [llm_step(model=model, max_steps=2, on_max_steps="last_answer")]}  # fmt: skip
    state = await run(stack, body)
    assert state["status"] == "completed", state["error"]
    done = [e for e in state["events"] if e["type"] == "run.tool_completed"]
    assert done and all(e["data"]["tool"] == "get_weather" for e in done)
    assert not any(e["data"]["error"] for e in done)


async def test_empty_stream_fails_the_step(stack: Stack) -> None:
    """Issue 12 (5): llama.cpp answers a context overflow in a stream with an empty 200;
    it was a success with output ""."""
    body = {"id": "empty", "steps": [llm_step(model={"name": "replay-llamacpp_context_overflow"},
                                              retry=ONE_TRY)]}  # fmt: skip
    state = await run(stack, body)
    assert state["status"] == "failed"
    assert state["error"]["code"] == "MODEL_EMPTY_REPLY"
    assert "context window" in state["error"]["message"]


async def test_cut_off_reply_fails_unless_the_step_accepts_it(stack: Stack) -> None:
    cut = {"name": "replay-llamacpp_cut_off"}
    body = {"id": "cut", "steps": [llm_step(model=cut, retry=ONE_TRY)]}
    state = await run(stack, body)
    assert state["error"]["code"] == "MODEL_REPLY_CUT_OFF"
    body = {"id": "cut-ok", "steps": [llm_step(model={**cut, "on_length": "accept"})]}
    state = await run(stack, body)
    assert state["status"] == "completed" and state["result"]


async def test_missing_usage_is_estimated_and_marked(stack: Stack) -> None:
    """Issue 12 (6): llama.cpp sends no usage in streams; it was recorded as 0 tokens."""
    body = {"id": "usage", "steps": [llm_step(model={"name": "replay-llamacpp_text"})]}
    state = await run(stack, body)
    assert state["status"] == "completed", state["error"]
    usage = state["usage"]
    assert usage["estimated"] is True
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    completed = next(e for e in state["events"] if e["type"] == "llm.completed")
    assert completed["data"]["usage_estimated"] is True
    # ... and the stats over this definition's runs say their usage is estimated
    stats: dict[str, Any] = {}
    for _ in range(100):  # visibility is eventually consistent
        r = await stack.http.get("/v1/stats", params={"definition_id": "usage"})
        assert r.status_code == 200, r.text
        stats = r.json()
        if stats["usage_estimated_runs"]:
            break
        await asyncio.sleep(0.2)
    assert stats["usage_estimated_runs"] == 1, stats
    assert stats["tokens"]["total"] == usage["input_tokens"] + usage["output_tokens"]
    assert any("estimates" in n for n in stats["notes"]), stats["notes"]


async def test_cancel_requests_the_model_activity_cancellation_at_once(
    stack: Stack, fake: FakeLlmServer, capfd: pytest.CaptureFixture[str]
) -> None:
    """Issue 12 (7): a cancelled run left its model call running until a heartbeat failed
    (the call ended with a traceback in the worker log); now the workflow cancels it."""
    await stack.put_definition({"id": "slow", "steps": [llm_step(model={"name": "slow"})]})
    run_id = (await stack.start("slow"))["run_id"]
    await asyncio.wait_for(fake.slow_started.wait(), 60)
    await asyncio.sleep(0.5)
    cancelled_at = time.monotonic()
    r = await stack.http.post(f"/v1/runs/{run_id}/cancel", json={"reason": "enough"})
    assert r.status_code in (200, 202), r.text
    result = await stack.wait_result(run_id, wait=60)
    assert result["state"]["status"] == "cancelled"
    assert fake.slow_closed_at is not None
    assert fake.slow_closed_at - cancelled_at < 5  # the real-server tier measures the 1 s
    handle = stack.client.get_workflow_handle(run_id)
    kinds = [e.event_type async for e in handle.fetch_history_events()]
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED in kinds
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED in kinds
    logs = capfd.readouterr()
    assert "Traceback" not in logs.err + logs.out
    assert "not found" not in (logs.err + logs.out).lower()
    print(f"model stream closed {fake.slow_closed_at - cancelled_at:.2f}s after the cancel")
