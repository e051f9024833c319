"""A finished run whose stream cannot be read (no worker left to answer the stream's
query) is still replayed: from the events kept in its final state."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from tests.integration.test_events import SLOW, collect
from tests.stack import run_stack
from worker.main import build_worker


async def test_closed_run_without_worker_replays_from_state(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(
        dev_env, task_queue, tmp_path, worker=False, events_query_timeout_s=1.0
    ) as stack:
        await stack.put_definition(SLOW)
        async with build_worker(dev_env.client, stack.settings, task_queue):
            run = await stack.start("slow")
            assert (await stack.wait_result(run["run_id"]))["status"] == "completed"
        # the worker is gone: the stream's query cannot be answered
        events: list[dict[str, Any]] = await asyncio.wait_for(
            collect(stack.http, run["run_id"]), 60
        )
        types = [e["type"] for e in events]
        assert types[0] == "run.created" and types[-1] == "run.completed"
        assert types.count("step.completed") == 4
        r = await stack.http.get(
            f"/v1/runs/{run['run_id']}/events", headers={"Accept": "application/json"}
        )
        page = r.json()
        assert page["source"] == "state" and page["done"] is True
        assert [e["type"] for e in page["events"]] == types
