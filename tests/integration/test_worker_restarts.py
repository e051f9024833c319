"""A long tool call survives rolling worker restarts without using up its retries.

Real workers on the dev server, each stopped the way a deploy stops one (graceful
shutdown: stop polling, wait `shutdown_grace_s`, cancel what still runs). Three
restarts cut the same 3-attempt tool call three times; the run still completes, and
`steps[].attempts` equals the attempts Temporal's history shows.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType as HistoryEvent
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from duratask.settings import Settings
from tests.fakes import tools
from tests.helpers import definition, eventually, make_worker, run_input, start
from workflows.models import RunState, RunStatus

RESTARTS = 3


async def test_long_call_survives_three_rolling_restarts(
    dev_client: Client, task_queue: str
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        http_allow_private=True,
        tool_modules=["tests.fakes.tools"],
        shutdown_grace_s=0.2,
        heartbeat_throttle_s=0.5,
    )
    defn = definition(
        [{"id": "slow", "action": "tool_call", "tool": "record",
          "args": {"note": "n", "delay_s": 6}}],  # default retry budget: 3 attempts
        id="restarts",
        tools=["record"],
    )  # fmt: skip
    handle = await start(dev_client, task_queue, run_input(defn))
    key = f"{handle.id}/slow/1/0"
    for n in range(1, RESTARTS + 1):
        worker = make_worker(dev_client, task_queue, settings=settings)
        running = asyncio.create_task(worker.run())
        await eventually(lambda n=n: _entered(key, n), timeout=60)  # type: ignore[misc]
        await worker.shutdown()  # a rolling deploy: this attempt is cut short
        await running
    async with make_worker(dev_client, task_queue, settings=settings):
        state: RunState = await asyncio.wait_for(handle.result(), 90)
    assert state.status == RunStatus.completed, state.error
    step = state.step("slow")
    assert step.interruptions == RESTARTS
    assert tools.EFFECTS[key] == 1 and tools.ATTEMPTS[key] == RESTARTS + 1
    # the attempts shown are the attempts Temporal ran
    history = await handle.fetch_history()
    ran = sum(
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == HistoryEvent.EVENT_TYPE_ACTIVITY_TASK_STARTED
    )
    assert step.attempts == ran == RESTARTS + 1


async def _entered(key: str, n: int) -> bool:
    return tools.ATTEMPTS[key] >= n


async def test_killed_worker_does_not_use_a_retry(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """kill -9 of a worker process: the heartbeat timeout reschedules the call uncounted."""
    client = dev_env.client
    defn = definition(
        [{"id": "slow", "action": "tool_call", "tool": "record",
          "args": {"note": "n", "delay_s": 3}, "retry": {"max_attempts": 2}}],
        id="killed",
        tools=["record"],
    )  # fmt: skip
    handle = await start(client, task_queue, run_input(defn))
    env = {
        **os.environ,
        "DURATASK_TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "DURATASK_TASK_QUEUE": task_queue,
        "DURATASK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/w.db",
        "DURATASK_TOOL_MODULES": '["tests.fakes.tools"]',
        "DURATASK_HTTP_ALLOW_PRIVATE": "true",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.main", env=env, cwd=Path(__file__).parents[2]
    )
    try:
        await eventually(lambda: _activity_started(handle), timeout=60)
    finally:
        proc.kill()  # SIGKILL: no shutdown, the attempt just stops heartbeating
        await proc.wait()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, http_allow_private=True, tool_modules=["tests.fakes.tools"]
    )
    async with make_worker(client, task_queue, settings=settings):
        state: RunState = await asyncio.wait_for(handle.result(), 90)
    assert state.status == RunStatus.completed, state.error
    step = state.step("slow")
    # Temporal did not retry the timed-out attempt itself (that would use the budget):
    # the workflow scheduled the call again
    assert (step.interruptions, step.attempts) == (1, 2)
    history = await handle.fetch_history()
    started = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == HistoryEvent.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    assert started == [1, 1]


async def _activity_started(handle: WorkflowHandle[Any, Any]) -> bool:
    desc = await handle.describe()
    return any(
        p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        for p in desc.raw_description.pending_activities
    )
