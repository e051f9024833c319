"""The openai and anthropic providers over real HTTP, through the real activity and worker.

A fake OpenAI-compatible server on loopback plays each scenario (see
tests/fakes/openai_server.py); the dev server runs the workflows in real time, so
Retry-After and heartbeat-driven cancellation are measured, not simulated.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Worker

from duratask.settings import AnthropicSettings, OpenAISettings, Settings
from tests.fakes.openai_server import RETRY_AFTER_S, FakeLlmServer, serve_fake_llm
from tests.helpers import definition, make_worker, run_input, start
from workflows import contracts
from workflows.models import RunState
from workflows.run_workflow import TaskRunWorkflow

API_KEY = "sk-test-DO-NOT-LEAK-7f3a9c"
FAST_RETRY = {"max_attempts": 4, "initial_interval": 0.1, "max_interval": 1}


@pytest.fixture
async def fake() -> AsyncIterator[FakeLlmServer]:
    async with serve_fake_llm() as f:
        yield f


def settings_for(fake: FakeLlmServer) -> Settings:
    return Settings(
        openai=OpenAISettings(api_key=SecretStr(API_KEY), base_url=f"{fake.url}/v1"),
        anthropic=AnthropicSettings(api_key=SecretStr(API_KEY), base_url=fake.url),
        tool_modules=["tests.fakes.tools"],
        prices={"tools": (1.0, 2.0)},
        _env_file=None,  # type: ignore[call-arg]
    )


def agent(model: dict[str, Any], tools: list[str] | None = None, **step: Any) -> Any:
    return definition(
        [
            {
                "id": "ask",
                "action": "llm_call",
                "prompt": "hi there",
                "model": model,
                "retry": FAST_RETRY,
                **step,
            }
        ],
        tools=tools or [],
    )


def worker(client: Client, tq: str, fake: FakeLlmServer) -> Worker:
    return make_worker(client, tq, settings=settings_for(fake))


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value
        try:
            yield base64.b64decode(value, validate=True).decode("utf-8", errors="ignore")
        except ValueError:
            pass


async def assert_key_not_in_history(handle: WorkflowHandle[Any, Any]) -> None:
    history = await handle.fetch_history()
    texts = list(_strings(history.to_json_dict()))
    assert any("hi there" in t for t in texts), "history payloads were not decoded"
    assert not any(API_KEY in t for t in texts)


async def test_streamed_tool_loop_usage_cost_and_no_key_leak(
    dev_client: Client, task_queue: str, fake: FakeLlmServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    defn = agent({"provider": "openai", "name": "tools"}, tools=["add"])
    with structlog.testing.capture_logs() as logs:
        async with worker(dev_client, task_queue, fake):
            handle = await start(dev_client, task_queue, run_input(defn))
            state: RunState = await handle.result()
    assert state.status == "completed"
    assert state.result == 'sums: {"sum": 5.0}, {"sum": 30.0}'
    # streamed, with usage requested, tools offered with their JSON schema
    first = fake.requests[0]
    assert first.body["stream"] is True
    assert first.body["stream_options"] == {"include_usage": True}
    assert first.body["tools"][0]["function"]["name"] == "add"
    assert first.body["tools"][0]["function"]["parameters"]["required"] == ["a", "b"]
    assert first.headers["authorization"] == f"Bearer {API_KEY}"  # the key is used...
    # ...the two tool calls were assembled from chunks and ran in parallel
    second = fake.requests[1].body["messages"]
    assert [m["role"] for m in second[-3:]] == ["assistant", "tool", "tool"]
    # usage and cost per step and per run (2 calls x 1000 in / 500 out at $1/$2 per M)
    assert state.step("ask").usage.input_tokens == 2000
    assert state.step("ask").usage.output_tokens == 1000
    assert state.usage.cost_usd == pytest.approx(0.004)
    desc = await handle.describe()
    sa = desc.typed_search_attributes
    assert sa.get(contracts.SA_TOKENS) == 3000
    assert sa.get(contracts.SA_COST) == pytest.approx(0.004)
    # ...and visible to Temporal's visibility queries
    query = f"WorkflowId = '{handle.id}' AND DurataskTokens = 3000 AND DurataskCostUsd > 0.003"
    for _ in range(600):
        if [w async for w in dev_client.list_workflows(query)]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"no run matched {query}")
    # ...and never logged nor in history
    assert any(e.get("event") == "llm call" for e in logs)
    assert API_KEY not in repr(logs)
    assert API_KEY not in caplog.text
    await assert_key_not_in_history(handle)


async def test_non_streamed_reply(dev_client: Client, task_queue: str, fake: FakeLlmServer) -> None:
    defn = agent({"provider": "openai", "name": "text", "stream": False, "temperature": 0.2})
    async with worker(dev_client, task_queue, fake):
        state: RunState = await (await start(dev_client, task_queue, run_input(defn))).result()
    assert state.result == "You said: hi there"
    assert "stream" not in fake.requests[0].body
    assert fake.requests[0].body["temperature"] == 0.2
    assert state.usage.input_tokens == 1000


async def test_429_is_retried_after_retry_after(
    dev_client: Client, task_queue: str, fake: FakeLlmServer
) -> None:
    defn = agent({"provider": "openai", "name": "rate-limited"})
    async with worker(dev_client, task_queue, fake):
        state: RunState = await (await start(dev_client, task_queue, run_input(defn))).result()
    assert state.status == "completed"
    first, second = fake.times("rate-limited")
    # the retry policy alone would retry after 0.1 s; Retry-After says 2 s
    assert second - first >= RETRY_AFTER_S - 0.25


async def test_500_is_retried(dev_client: Client, task_queue: str, fake: FakeLlmServer) -> None:
    defn = agent({"provider": "openai", "name": "flaky"})
    async with worker(dev_client, task_queue, fake):
        state: RunState = await (await start(dev_client, task_queue, run_input(defn))).result()
    assert state.status == "completed"
    assert fake.counts["flaky"] == 2


async def test_400_fails_the_step_without_retry(
    dev_client: Client, task_queue: str, fake: FakeLlmServer
) -> None:
    defn = agent({"provider": "openai", "name": "bad"})
    async with worker(dev_client, task_queue, fake):
        handle = await start(dev_client, task_queue, run_input(defn))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await handle.query(TaskRunWorkflow.state)
    assert fake.counts["bad"] == 1
    error = state.step("ask").error
    assert error is not None
    assert error.code == "invalid_value"
    assert "too hot" in error.message
    assert error.details["status"] == 400


async def test_slow_stream_is_cancelled_within_a_heartbeat(
    dev_client: Client, task_queue: str, fake: FakeLlmServer
) -> None:
    defn = agent({"provider": "openai", "name": "slow"})
    async with worker(dev_client, task_queue, fake):
        handle = await start(dev_client, task_queue, run_input(defn))
        await asyncio.wait_for(fake.slow_started.wait(), 30)
        await asyncio.sleep(0.5)
        cancelled_at = time.monotonic()
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        for _ in range(300):
            if fake.slow_closed_at is not None:
                break
            await asyncio.sleep(0.1)
    assert fake.slow_closed_at is not None
    # the activity heartbeats every 2 s; the cancel must land well before the reply ends
    assert fake.slow_closed_at - cancelled_at < 10
    desc = await handle.describe()
    assert desc.status is not None and desc.status.name == "CANCELED"


async def test_anthropic_streamed_tool_loop(
    dev_client: Client, task_queue: str, fake: FakeLlmServer
) -> None:
    defn = agent({"provider": "anthropic", "name": "tools"}, tools=["add"])
    async with worker(dev_client, task_queue, fake):
        state: RunState = await (await start(dev_client, task_queue, run_input(defn))).result()
    assert state.result == "anthropic says hi"
    assert fake.requests[0].body["stream"] is True
    assert fake.requests[0].body["tools"][0]["input_schema"]["required"] == ["a", "b"]
    sent = fake.requests[1].body["messages"]
    assert sent[-2]["content"][0] == {"type": "tool_use", "id": "tu_1", "name": "add",
                                      "input": {"a": 1, "b": 2}}  # fmt: skip
    assert sent[-1]["content"][0]["content"] == '{"sum": 3.0}'
    assert state.usage.input_tokens == 22 and state.usage.output_tokens == 14


async def test_anthropic_tool_loop_and_error(
    dev_client: Client, task_queue: str, fake: FakeLlmServer
) -> None:
    defn = agent({"provider": "anthropic", "name": "tools", "stream": False}, tools=["add"])
    bad = agent({"provider": "anthropic", "name": "bad", "stream": False})
    async with worker(dev_client, task_queue, fake):
        state: RunState = await (await start(dev_client, task_queue, run_input(defn))).result()
        handle = await start(dev_client, task_queue, run_input(bad))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        failed = await handle.query(TaskRunWorkflow.state)
    assert state.result == "anthropic says hi"
    assert state.usage.input_tokens == 22
    sent = fake.requests[1].body["messages"]
    assert sent[-1]["content"][0]["type"] == "tool_result"
    headers = fake.requests[0].headers
    assert API_KEY in (headers.get("x-api-key", "") + headers.get("authorization", ""))
    err = failed.step("ask").error
    assert err is not None and err.code == "invalid_request_error" and "too large" in err.message


def test_error_mapping_and_retry_after_forms() -> None:
    """The pure part of the mapping: statuses, provider codes and every Retry-After form."""
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    from activities.llm.errors import from_status_error, retry_after

    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after({"retry-after": later}) or 0) <= 30
    assert retry_after({}) is None
    e = from_status_error(429, {"message": "slow down", "code": "rate_limit_exceeded"}, {})
    assert (e.code, e.message, e.retryable) == ("rate_limit_exceeded", "slow down", True)
    for status in (408, 409, 500, 503):
        assert from_status_error(status, None, {}).retryable
    for status in (400, 401, 403, 404, 422):
        assert not from_status_error(status, None, {}).retryable
    anthropic_style = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert from_status_error(529, anthropic_style, {}).code == "overloaded_error"


async def test_streamed_text_reaches_the_delta_sink(
    dev_client: Client, task_queue: str, fake: FakeLlmServer
) -> None:
    """The `delta_sink_factory` hook (token streaming) gets the text as it streams."""
    from activities.llm.activity import LlmActivities
    from activities.tools.registry import build_registry
    from worker.main import activities_for
    from workflows.models import LlmRequest

    settings = settings_for(fake)
    registry = build_registry(settings)
    deltas: list[tuple[str, int, str]] = []

    def sink_for(req: LlmRequest, attempt: int) -> Any:
        return lambda text: deltas.append((req.step_id, attempt, text))

    llm = LlmActivities(settings, registry, delta_sink_factory=sink_for)
    others = [a for a in activities_for(settings, registry) if a.__name__ != "complete"]
    defn = agent({"provider": "openai", "name": "text"})
    async with make_worker(dev_client, task_queue, settings=settings,
                           activities=[llm.complete, *others]):  # fmt: skip
        state: RunState = await (await start(dev_client, task_queue, run_input(defn))).result()
    assert state.result == "You said: hi there"
    assert len(deltas) > 1  # word by word, not one block
    assert "".join(d[2] for d in deltas) == "You said: hi there"
    assert {d[:2] for d in deltas} == {("ask", 1)}
