"""Rolling worker restarts during long tool calls: how many runs survive, and whether
the attempts a run shows are the attempts Temporal ran.

    python -m bench.restarts [--runs 10] [--restarts 3]

N runs each make one 6 s tool call (default retry budget: 3 attempts) while the only
worker is restarted R times the way a deploy does it (graceful shutdown, 0.2 s grace).
Figures are printed, never asserted. (Run from a checkout of an older commit, the
same script gives the "before" figures.)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from bench.server import start_dev_server
from duratask.logging import configure_logging
from duratask.settings import Settings
from tests.fakes import tools
from tests.helpers import definition, make_worker, run_input, start
from workflows.models import RunState


def _worker(client: Client, tq: str, settings: Settings) -> Worker:
    return make_worker(client, tq, settings=settings)


async def main(runs: int, restarts: int) -> None:
    configure_logging("WARNING", False)
    logging.getLogger("temporalio").setLevel(logging.CRITICAL)  # figures only
    env = await start_dev_server()
    tq = "bench-restarts"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            http_allow_private=True,
            tool_modules=["tests.fakes.tools"],
            shutdown_grace_s=0.2,
            database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}",
        )
        defn = definition(
            [{"id": "slow", "action": "tool_call", "tool": "record",
              "args": {"note": "n", "delay_s": 6}}],
            id="restarts", tools=["record"],
        )  # fmt: skip
        handles = [await start(env.client, tq, run_input(defn)) for _ in range(runs)]
        keys = [f"{h.id}/slow/1/0" for h in handles]
        for n in range(1, restarts + 1):
            worker = _worker(env.client, tq, settings)
            running = asyncio.create_task(worker.run())
            await _entered(keys, n)
            await worker.shutdown()
            await running
        completed, shown, ran, interrupted = 0, 0, 0, 0
        async with _worker(env.client, tq, settings):
            for h in handles:
                try:
                    state: RunState = await h.result()
                    completed += 1
                except WorkflowFailureError as e:
                    cause: Any = e.cause
                    state = RunState.model_validate(cause.details[0])
                shown += state.step("slow").attempts
                interrupted += getattr(state.step("slow"), "interruptions", 0)
                async for ev in h.fetch_history_events():
                    if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                        ran += ev.activity_task_started_event_attributes.attempt
    await env.shutdown()
    print(f"{restarts} rolling restarts during a 6 s call, retry budget 3")
    print(f"  runs completed: {completed}/{runs}")
    print(f"  attempts shown in steps[].attempts: {shown}; attempts Temporal started: {ran}")
    print(f"  attempts shown as interrupted (not counted as retries): {interrupted}")
    print(f"  tool entries (attempts that really ran): {sum(tools.ATTEMPTS[k] for k in keys)}")


async def _entered(keys: list[str], n: int) -> None:
    """Every run's tool call is in its n-th attempt (the fake tool counts entries)."""
    for _ in range(3000):
        if all(tools.ATTEMPTS[k] >= n for k in keys):
            return
        await asyncio.sleep(0.1)
    raise SystemExit("the tool calls did not start")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--restarts", type=int, default=3)
    a = parser.parse_args()
    asyncio.run(main(a.runs, a.restarts))
