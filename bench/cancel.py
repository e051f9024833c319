"""Cancel latency benchmark: `python -m bench.cancel [--runs N]`.

How long after a cancel does a running tool call learn of it (its `CancelledError`)?
Temporal delivers a cancellation to an activity only in the answer to a heartbeat, and
the SDK sends heartbeats at most every 80% of the heartbeat timeout by default, so a
raw activity with a 10 s heartbeat timeout hears of it up to 8 s late. duratask's
worker caps that at `heartbeat_throttle_s` (0.5 s by default).

- duratask: `POST /v1/runs/{id}/cancel` through the gateway while a `tool_call` step
  runs a tool that waits forever; the tool records when it is cancelled.
- raw: a workflow running one activity with the same 10 s heartbeat timeout that
  heartbeats every 0.5 s on an SDK-default worker; the client cancels the workflow.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from activities.tools.registry import ToolContext, ToolRegistry
from bench.baseline import MARKS, RawCancelWorkflow, raw_hang
from bench.server import figures_only, start_dev_server
from tests.stack import run_stack


class HangArgs(BaseModel):
    key: str


async def hang(args: HangArgs, ctx: ToolContext) -> None:
    MARKS.started(args.key)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        MARKS.cancelled(args.key)
        raise


def register(registry: ToolRegistry) -> None:
    """Loaded through `tool_modules`, as users load their tools."""
    registry.tool("hang", "Wait until cancelled.", HangArgs)(hang)


async def _raw_once(client: Client, queue: str) -> float:
    key = uuid.uuid4().hex
    handle: WorkflowHandle[Any, Any] = await client.start_workflow(
        RawCancelWorkflow.run, key, id=f"raw-cancel-{key}", task_queue=queue
    )
    await MARKS.wait_started(key)
    await asyncio.sleep(1.2)  # past the first (unthrottled) heartbeat
    t0 = time.perf_counter()
    await handle.cancel()
    return await MARKS.wait_cancelled(key) - t0


def _fmt(samples: list[float]) -> str:
    return (
        f"median {statistics.median(samples) * 1000:7.0f} ms  "
        f"(min {min(samples) * 1000:.0f}, max {max(samples) * 1000:.0f})"
    )


async def main(runs: int) -> None:
    env = await start_dev_server()
    raw_queue = f"bench-raw-{uuid.uuid4().hex[:6]}"
    definition = {
        "id": "cancel-me",
        "tools": ["hang"],
        "inputs": {"key": {"type": "string", "required": True}},
        "steps": [{"id": "work", "action": "tool_call", "tool": "hang",
                   "args": {"key": "{{ input.key }}"}}],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            Worker(
                env.client,
                task_queue=raw_queue,
                workflows=[RawCancelWorkflow],
                activities=[raw_hang],
            ),
            run_stack(
                env, f"bench-{uuid.uuid4().hex[:6]}", Path(tmp), tool_modules=["bench.cancel"]
            ) as stack,
        ):
            await stack.put_definition(definition)

            async def duratask_once() -> float:
                key = uuid.uuid4().hex
                run = await stack.start("cancel-me", input={"key": key})
                await MARKS.wait_started(key)
                await asyncio.sleep(1.2)
                t0 = time.perf_counter()
                r = await stack.http.post(
                    f"/v1/runs/{run['run_id']}/cancel", json={"reason": "bench"}
                )
                assert r.status_code == 202, r.text
                return await MARKS.wait_cancelled(key) - t0

            dt = [await duratask_once() for _ in range(runs)]
            raw = [await _raw_once(env.client, raw_queue) for _ in range(runs)]
    await env.shutdown()
    print(f"\ncancel -> the running tool call sees it, {runs} runs each")
    print(f"  raw Temporal (SDK defaults, 10 s heartbeat timeout): {_fmt(raw)}")
    print(f"  duratask (HTTP cancel, same heartbeat timeout)     : {_fmt(dt)}")
    print(f"  ratio: {statistics.median(dt) / statistics.median(raw):.2f}x raw")


if __name__ == "__main__":
    figures_only()  # the figures, not the run logs
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.runs))
