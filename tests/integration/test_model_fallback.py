"""Model fallback chains and per-endpoint rate limits, on the real stack.

Fallback: through the real gateway and worker on the dev server, with a loopback model
server that really refuses (HTTP 429 with Retry-After, every time) as the first endpoint
and another endpoint as the fallback. Rate limits: two workers, each with its own store
engine on the same database (SQLite file or real PostgreSQL), share one endpoint's
`requests_per_minute`; the request times counted at the loopback server show the limit
held across both, and the run state shows the calls that waited.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.llm.activity import LlmActivities
from duratask.settings import ModelEndpoint, Settings
from duratask.store.db import create_engine, migrate
from duratask.store.rate_limits import RateLimiter
from tests.fakes.openai_server import FakeLlmServer, serve_fake_llm
from tests.helpers import definition, run_input, start
from tests.stack import Stack, run_stack, stack_settings
from worker.main import build_worker, worker_store
from workflows.definition import ModelSpec
from workflows.models import ChatMessage, LlmRequest, RunState
from workflows.run_workflow import TaskRunWorkflow


@pytest.fixture
async def fake() -> AsyncIterator[FakeLlmServer]:
    async with serve_fake_llm() as f:
        yield f


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, fake: FakeLlmServer
) -> AsyncIterator[Stack]:
    endpoints = {
        "busy": ModelEndpoint(kind="openai", base_url=f"{fake.url}/v1", default_model="refusing"),
        "spare": ModelEndpoint(kind="openai", base_url=f"{fake.url}/v1", default_model="text"),
    }
    async with run_stack(dev_env, task_queue, tmp_path, model_endpoints=endpoints) as s:
        yield s


def llm_definition(id: str, model: dict[str, Any]) -> dict[str, Any]:
    return {"id": id, "model": model,
            "steps": [{"id": "ask", "action": "llm_call", "prompt": "hello"}]}  # fmt: skip


async def finished(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    await stack.put_definition(body)
    started = await stack.start(body["id"])
    result = await stack.wait_result(started["run_id"], wait=90)
    assert result["done"], result
    return result["state"]  # type: ignore[no-any-return]


def events(state: dict[str, Any], type: str) -> list[dict[str, Any]]:
    return [e for e in state["events"] if e["type"] == type]


async def test_an_endpoint_answering_429_every_time_is_answered_by_its_fallback(
    stack: Stack, fake: FakeLlmServer
) -> None:
    state = await finished(stack, llm_definition("fallback", {
        "endpoint": "busy",
        "fallback": [{"endpoint": "spare", "name": "text"}],
    }))  # fmt: skip
    assert state["status"] == "completed", state["error"]
    step = state["steps"][0]
    assert step["output"] == "You said: hello"
    assert step["model"] == {"endpoint": "spare", "provider": None, "name": "text", "fallback": 1}
    refused = fake.times("refusing")
    assert len(refused) == 2  # `fallback_after` (2) attempts, then the fallback
    assert refused[1] - refused[0] >= 0.9  # its Retry-After (1 s) was honoured
    assert len(fake.times("text")) == 1
    (moved,) = events(state, "llm.fallback")
    assert moved["data"]["failed"] == "busy/refusing" and moved["data"]["next"] == "spare/text"
    assert moved["data"]["code"] == "rate_limit_exceeded"
    (done,) = events(state, "llm.completed")
    assert done["data"]["endpoint"] == "spare" and done["data"]["fallback"] == 1
    # and the run's page says which model answered
    r = await stack.http.get(f"/v1/runs/{state['run_id']}")
    assert r.json()["steps"][0]["model"]["endpoint"] == "spare"


async def test_a_long_retry_after_moves_to_the_fallback_at_once(
    stack: Stack, fake: FakeLlmServer
) -> None:
    state = await finished(stack, llm_definition("long-wait", {
        "endpoint": "busy", "name": "refusing-long",
        "fallback": [{"endpoint": "spare"}],
    }))  # fmt: skip
    assert state["status"] == "completed", state["error"]
    assert len(fake.times("refusing-long")) == 1  # Retry-After 120 s > fallback_wait 30 s
    assert state["steps"][0]["model"]["name"] == "text"  # the spare endpoint's default model


async def test_a_bad_request_does_not_fall_back(stack: Stack, fake: FakeLlmServer) -> None:
    """A 400 is the request's fault: another model would refuse it too."""
    state = await finished(stack, llm_definition("no-fallback", {
        "endpoint": "busy", "name": "bad", "fallback": [{"endpoint": "spare"}],
    }))  # fmt: skip
    assert state["status"] == "failed"
    assert state["error"]["code"] == "invalid_value"
    assert fake.times("text") == []
    assert events(state, "llm.fallback") == []


async def test_the_last_model_of_the_chain_failing_fails_the_step(
    stack: Stack, fake: FakeLlmServer
) -> None:
    body = llm_definition("all-down", {
        "endpoint": "busy", "name": "refusing-long",
        "fallback": [{"endpoint": "spare", "name": "refusing"}],
    })  # fmt: skip
    body["steps"][0]["retry"] = {"max_attempts": 2, "initial_interval": "1s"}
    state = await finished(stack, body)
    assert state["status"] == "failed"
    assert state["error"]["code"] == "rate_limit_exceeded"
    assert len(fake.times("refusing")) == 2  # the last model gets the step's whole budget
    assert len(events(state, "llm.fallback")) == 1


# ------------------------------------------------------------ rate limits across workers


async def _state(handle: WorkflowHandle[Any, Any]) -> RunState:
    return await handle.query(TaskRunWorkflow.state)


async def test_two_workers_share_one_endpoint_rate_limit(
    dev_env: WorkflowEnvironment, tmp_path: Path, fake: FakeLlmServer, db_url: str
) -> None:
    limit = 2
    endpoint = ModelEndpoint(kind="openai", base_url=f"{fake.url}/v1", default_model="text",
                             requests_per_minute=limit)  # fmt: skip
    queues = [f"rl-a-{tmp_path.name[-8:]}", f"rl-b-{tmp_path.name[-8:]}"]
    defn = definition(
        [{"id": "ask", "action": "llm_call", "prompt": "hello"}],
        id="limited",
        model={"endpoint": "limited"},
    )
    async with contextlib.AsyncExitStack() as stack:
        for queue in queues:  # two workers, each with its own engine on the shared store
            settings = stack_settings(
                dev_env, queue, tmp_path, database_url=db_url,
                model_endpoints={"limited": endpoint}, rate_limit_inline_wait_s=0,
            )  # fmt: skip
            store = worker_store(settings)
            if queue == queues[0]:
                await migrate(store.engine)
            stack.push_async_callback(store.engine.dispose)
            await stack.enter_async_context(
                build_worker(dev_env.client, settings, queue, store=store)
            )
        handles = [
            await start(dev_env.client, queues[i % 2], run_input(defn, {}))
            for i in range(2 * limit)
        ]

        async def waiting() -> list[RunState]:
            while True:
                states = await asyncio.gather(*(_state(h) for h in handles))
                held = [s for s in states if s.steps and s.steps[0].waiting_for_rate_limit]
                if len(held) == limit:
                    return held
                await asyncio.sleep(0.3)

        held = await asyncio.wait_for(waiting(), 60)
        for s in held:
            wait = s.steps[0].waiting_for_rate_limit
            assert wait is not None and wait.endpoint == "limited"
            assert wait.limit == "requests_per_minute"
            assert [e.type for e in s.events].count("llm.waiting_for_rate_limit") == 1
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 150)
    assert all(r.status.value == "completed" for r in results), [r.error for r in results]
    assert {r.steps[0].output for r in results} == {"You said: hello"}
    assert all(r.steps[0].waiting_for_rate_limit is None for r in results)
    times = sorted(fake.times("text"))
    assert len(times) == 2 * limit
    # no 60-second window at the server held more than the limit (slack for the time
    # between a call's start and its request's arrival on a loaded machine; without the
    # limit all four arrive within a second or two)
    for i in range(len(times) - limit):
        assert times[i + limit] - times[i] >= 58.0, times


# ------------------------------------------------------------ the activity's side


def _llm_request(reservation: int | None = None) -> LlmRequest:
    return LlmRequest(run_id="run-rl", step_id="ask", turn=1, reservation=reservation,
                      model=ModelSpec(endpoint="limited"),
                      messages=[ChatMessage(role="user", content="hello")])  # fmt: skip


async def test_a_short_wait_is_slept_in_the_activity_heartbeating(
    fake: FakeLlmServer, db_url: str
) -> None:
    """A slot a few seconds away: the activity waits for it itself, heartbeating that it
    waits for the endpoint's limit, then calls; the server sees the two calls a window
    apart (a 2 s window here, to keep the test short)."""
    endpoint = ModelEndpoint(base_url=f"{fake.url}/v1", default_model="text",
                             requests_per_minute=1)  # fmt: skip
    settings = Settings(model_endpoints={"limited": endpoint},  # type: ignore[call-arg]
                        rate_limit_inline_wait_s=10, _env_file=None)  # fmt: skip
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        llm = LlmActivities(settings, limiter=RateLimiter(engine, window_s=2.0))
        beats: list[Any] = []
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *d: beats.append(d[0] if d else None)
        first = await env.run(llm.complete, _llm_request())
        second = await env.run(llm.complete, _llm_request())
        assert first.text == second.text == "You said: hello"
        assert second.rate_limited is None and second.endpoint == "limited"
        times = fake.times("text")
        assert len(times) == 2 and times[1] - times[0] >= 1.9
        assert any(isinstance(b, dict) and b.get("waiting_for_rate_limit") == "limited"
                   for b in beats)  # fmt: skip
    finally:
        await engine.dispose()


async def test_a_long_wait_goes_back_to_the_workflow_with_the_slot(
    fake: FakeLlmServer, db_url: str
) -> None:
    """Past `rate_limit_inline_wait_s` the activity calls nothing and hands back its slot;
    called again with it once the slot is due, it calls at once, and the slot is not
    handed out twice."""
    endpoint = ModelEndpoint(base_url=f"{fake.url}/v1", default_model="text",
                             requests_per_minute=1)  # fmt: skip
    settings = Settings(model_endpoints={"limited": endpoint},  # type: ignore[call-arg]
                        rate_limit_inline_wait_s=0, _env_file=None)  # fmt: skip
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        limiter = RateLimiter(engine, window_s=2.0)
        llm = LlmActivities(settings, limiter=limiter)
        env = ActivityEnvironment()
        await env.run(llm.complete, _llm_request())
        told = await env.run(llm.complete, _llm_request())
        wait = told.rate_limited
        assert wait is not None and told.text is None
        assert wait.endpoint == "limited" and wait.limit == "requests_per_minute"
        assert 1.0 < wait.wait_s <= 2.0
        assert len(fake.times("text")) == 1  # nothing was sent for the waiting call
        await asyncio.sleep(wait.wait_s)
        answered = await env.run(llm.complete, _llm_request(wait.reservation))
        assert answered.text == "You said: hello" and answered.rate_limited is None
        assert len(fake.times("text")) == 2
        assert await limiter.claim(wait.reservation, "limited") is None  # used once
    finally:
        await engine.dispose()
