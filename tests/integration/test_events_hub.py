"""The gateway's fan-out hub against a real run: slow readers are dropped, not waited for.

Over HTTP a slow reader is hidden by socket buffers, so this drives the hub directly
(the same object the SSE endpoint uses) with a reader that stops reading.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import Client

from api.streams import FellBehind, StreamHub
from duratask.settings import Settings
from tests.helpers import definition, make_worker, run_input, start
from workflows.models import StreamEvent


async def _no_state(run_id: str) -> Any:
    raise AssertionError("the stream is readable: no fallback expected")


async def test_slow_client_is_dropped_and_resumes(dev_client: Client, task_queue: str) -> None:
    settings = Settings(events_max_lag=3, events_idle_linger_s=0, _env_file=None)  # type: ignore[call-arg]
    hub = StreamHub(dev_client, settings, _no_state)
    # the run first waits, so both readers catch up with the live edge (a reader that
    # never did is still reading the past, and reads on from the stream instead); a
    # model pause per step makes the events come over many polls
    slow_model = {"provider": "scripted", "name": "script",
                  "script": [{"delay": 0.3, "text": "a step's answer"}]}  # fmt: skip
    defn = definition(
        [{"id": "pause", "action": "wait", "duration": "4s"}]
        + [
            {
                "id": f"s{i}",
                "action": "llm_call",
                "prompt": f"step {i} of the run",
                "model": slow_model,
            }
            for i in range(5)
        ]
    )
    async with make_worker(dev_client, task_queue):
        handle = await start(dev_client, task_queue, run_input(defn))
        fast: list[StreamEvent] = []
        slow: list[StreamEvent] = []
        proceed = asyncio.Event()
        joined = asyncio.Event()

        async def fast_reader() -> None:
            async with hub.subscribe(handle.id, -1) as events:
                async for e in events:
                    fast.append(e)
                    if e.type == "run.started":
                        joined.set()
            proceed.set()

        async def slow_reader() -> None:
            # it joins at the live edge, so it has caught up (is live) before it stalls
            await joined.wait()
            async with hub.subscribe(handle.id, start_after) as events:
                async for e in events:
                    slow.append(e)
                    if e.step_id == "s0":  # live since the wait: now stop reading
                        await proceed.wait()  # until the fast one is done

        fast_task = asyncio.create_task(fast_reader())
        await asyncio.wait_for(joined.wait(), 60)
        start_after = fast[-1].offset
        with pytest.raises(FellBehind):
            await asyncio.wait_for(slow_reader(), 60)
        await asyncio.wait_for(fast_task, 60)
        assert fast[-1].type == "run.completed"
        assert [e.offset for e in fast] == list(range(len(fast)))
        assert hub.counters.subscriptions_started == 1
        assert hub.counters.clients_dropped_behind == 1
        # the dropped client resumes after its last offset and gets the rest, once each
        rest = []
        async with hub.subscribe(handle.id, slow[-1].offset) as events:
            async for e in events:
                rest.append(e)
        assert slow + rest == fast[start_after + 1 :]
    await hub.close()
