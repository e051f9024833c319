"""What streaming costs the run's history, counted on a real dev server.

Token deltas are relayed outside the Workflow Stream, so a model call costs the history
of its activity alone, watched or not; following a run costs only the shared
subscription's polls, which wait for durable events, not for tokens. These are event
counts (the budget in the design), never timings.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from activities.llm import activity as llm_activity
from activities.llm.base import DeltaSink
from tests.stack import Stack
from workflows.models import LlmRequest, LlmResponse, Usage

STEP_BUDGET = 8  # history events per further llm_call step, nobody watching
PER_1K_TOKENS = 150  # history events per 1,000 streamed tokens, watched or not


class Paced:
    """A model writing `tokens` words at `per_s` a second (the shape of a real stream)."""

    name = "paced"

    async def complete(
        self, req: LlmRequest, tools: list[dict[str, Any]], on_delta: DeltaSink | None = None
    ) -> LlmResponse:
        tokens, per_s = int(req.model.options["tokens"]), float(req.model.options["per_s"])
        await asyncio.sleep(float(req.model.options.get("delay", 0)))
        words = [f"w{i} " for i in range(tokens)]
        for w in words:
            written = on_delta(w) if on_delta is not None else None
            if written is not None:
                await written
            await asyncio.sleep(1 / per_s)
        return LlmResponse(text="".join(words), usage=Usage(output_tokens=tokens))


def paced(def_id: str, steps: int, tokens: int, per_s: float, delay: float = 0) -> dict[str, Any]:
    return {
        "id": def_id,
        "model": {"provider": "paced", "name": "p",
                  "options": {"tokens": tokens, "per_s": per_s, "delay": delay}},
        "steps": [{"id": f"s{i}", "action": "llm_call", "prompt": "go"} for i in range(steps)],
    }  # fmt: skip


async def history_len(stack: Stack, run_id: str) -> int:
    return len([e async for e in stack.client.get_workflow_handle(run_id).fetch_history_events()])


async def run_unwatched(stack: Stack, def_id: str) -> str:
    run_id: str = (await stack.start(def_id))["run_id"]
    assert (await stack.wait_result(run_id, 60))["status"] == "completed"
    return run_id


async def follow(http: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    events = []
    async with aconnect_sse(http, "GET", f"/v1/runs/{run_id}/events") as source:
        async for sse in source.aiter_sse():
            events.append(json.loads(sse.data))
            if sse.event in ("run.completed", "run.failed", "run.cancelled"):
                break
    return events


@pytest.fixture(autouse=True)
def _paced_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(llm_activity.PROVIDERS, "paced", lambda _s: Paced())


async def test_llm_call_steps_unwatched_stay_within_budget(stack: Stack) -> None:
    # answers of 0.4 s: a few delta batches each, as a real model's short answer
    await stack.put_definition(paced("one", 1, tokens=40, per_s=100))
    await stack.put_definition(paced("three", 3, tokens=40, per_s=100))
    one = await history_len(stack, await run_unwatched(stack, "one"))
    three = await history_len(stack, await run_unwatched(stack, "three"))
    per_step = (three - one) / 2
    assert per_step <= STEP_BUDGET, (one, three)
    # and a longer streamed answer adds nothing to it: 300 tokens cost what 40 do
    await stack.put_definition(paced("long", 1, tokens=300, per_s=600))
    assert await history_len(stack, await run_unwatched(stack, "long")) == one


@pytest.mark.parametrize("clients", [1, 25])
async def test_watched_stream_within_budget_and_clients_see_every_token(
    stack: Stack, clients: int
) -> None:
    tokens = 400  # 2 s at 200 tokens/s
    await stack.put_definition(paced("short", 1, tokens=5, per_s=400))
    await stack.put_definition(paced("stream", 1, tokens=tokens, per_s=200, delay=1.0))
    base = await history_len(stack, await run_unwatched(stack, "short"))
    run_id = (await stack.start("stream"))["run_id"]
    limits = httpx.Limits(max_connections=clients + 5)
    async with httpx.AsyncClient(base_url=stack.url, timeout=60, limits=limits) as http:
        seen = await asyncio.wait_for(
            asyncio.gather(*(follow(http, run_id) for _ in range(clients))), 60
        )
    expected = "".join(f"w{i} " for i in range(tokens))
    for events in seen:
        text = "".join(e["data"]["text"] for e in events if e["type"] == "llm.delta")
        assert text == expected  # a client following live sees every token, in order
        deltas = [i for i, e in enumerate(events) if e["type"] == "llm.delta"]
        done = next(i for i, e in enumerate(events) if e["type"] == "llm.completed")
        assert deltas and max(deltas) < done  # the text comes before the call's end
        assert events[-1]["type"] == "run.completed"
    watched = await history_len(stack, run_id)
    assert watched - base <= PER_1K_TOKENS * tokens / 1000, (watched, base)
