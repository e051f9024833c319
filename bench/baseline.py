"""The raw Temporal baseline: a workflow running N no-op activities in sequence.

This is what a hand-written Temporal program costs on the same server, in the same
process; duratask's figures are reported as ratios against it.
"""

from __future__ import annotations

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
