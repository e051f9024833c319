"""The raw Workflow Streams baseline: what streaming tokens costs without duratask.

`RawStreamWorkflow` hosts a `WorkflowStream` and runs one activity that publishes
`tokens` items (one per token, each stamped with its publish time) through
`WorkflowStreamClient.from_within_activity` at the SDK-recommended 200 ms batch
interval, the way the SDK's own samples stream. With `stream=False` the activity
only sleeps for the same time: the history it leaves is the cost of everything but
streaming. Kept apart from bench/streams.py so the sandbox imports nothing heavy.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamClient


@dataclass
class RawStreamInput:
    tokens: int
    per_s: float
    stream: bool = True
    start_delay_s: float = 1.0


@activity.defn(name="bench.stream_tokens")
async def stream_tokens(inp: RawStreamInput) -> int:
    await asyncio.sleep(inp.start_delay_s)
    if not inp.stream:
        await asyncio.sleep(inp.tokens / inp.per_s)
        return 0
    client = WorkflowStreamClient.from_within_activity(batch_interval=timedelta(milliseconds=200))
    topic = client.topic("events")
    async with client:
        for i in range(inp.tokens):
            topic.publish({"type": "llm.delta", "t": time.time(), "text": f"tok{i} "})
            await asyncio.sleep(1 / inp.per_s)
        topic.publish({"type": "run.completed", "t": time.time()})
    return inp.tokens


@workflow.defn(name="BenchRawStreamWorkflow")
class RawStreamWorkflow:
    @workflow.init
    def __init__(self, inp: RawStreamInput) -> None:
        self.stream = WorkflowStream()

    @workflow.run
    async def run(self, inp: RawStreamInput) -> int:
        return int(
            await workflow.execute_activity(
                stream_tokens, inp, start_to_close_timeout=timedelta(minutes=5)
            )
        )
