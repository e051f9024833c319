"""The raw Temporal baseline: a workflow running N no-op activities in sequence.

This is what a hand-written Temporal program costs on the same server, in the same
process; duratask's figures are reported as ratios against it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench.noop")
async def noop(text: str) -> str:
    return text


@workflow.defn(name="BenchRawWorkflow")
class RawWorkflow:
    @workflow.run
    async def run(self, steps: int) -> str:
        out = ""
        for i in range(steps):
            out = await workflow.execute_activity(
                noop, f"step {i}", start_to_close_timeout=timedelta(seconds=30)
            )
        return out


class Marks:
    """When a waiting activity started and when it saw its cancellation (bench/cancel.py)."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.events: dict[str, asyncio.Event] = {}

    def _event(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    def started(self, key: str) -> None:
        self._event(f"{key}:started").set()

    def cancelled(self, key: str) -> None:
        self.times[key] = time.perf_counter()
        self._event(f"{key}:cancelled").set()

    async def wait_started(self, key: str) -> None:
        await asyncio.wait_for(self._event(f"{key}:started").wait(), 60)

    async def wait_cancelled(self, key: str) -> float:
        await asyncio.wait_for(self._event(f"{key}:cancelled").wait(), 60)
        return self.times[key]


MARKS = Marks()


@activity.defn(name="bench.hang")
async def raw_hang(key: str) -> None:
    """Heartbeats every 0.5 s until cancelled, like a well-behaved long activity."""
    MARKS.started(key)
    try:
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.5)
    except asyncio.CancelledError:
        MARKS.cancelled(key)
        raise


@workflow.defn(name="BenchRawCancelWorkflow")
class RawCancelWorkflow:
    @workflow.run
    async def run(self, key: str) -> None:
        await workflow.execute_activity(
            raw_hang,
            key,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(seconds=10),
        )
