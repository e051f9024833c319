"""Events: auth like every read endpoint and the Web UI's current details.

The stream carried across continue-as-new is tested with the agent loop that does it
(tests/workflow/test_agent.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from duratask.settings import ApiKey
from tests.helpers import definition, make_worker, run_input, start
from tests.stack import run_stack

NAP = {"id": "nap", "steps": [{"id": "nap", "action": "wait", "duration": "1h"}]}


async def test_events_need_read_scope(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    keys = [
        ApiKey(key="admin-key", identity="admin"),  # type: ignore[arg-type]
        ApiKey(key="write-only", identity="bot", scopes=["tasks:write"]),  # type: ignore[arg-type]
    ]
    admin = {"Authorization": "Bearer admin-key"}
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=keys, headers=admin) as stack:
        await stack.put_definition(NAP)
        run = await stack.start("nap")
        url = f"{stack.url}/v1/runs/{run['run_id']}/events"
        async with stack.http.stream("GET", url) as resp:  # the admin may read it
            assert resp.status_code == 200
        async with httpx.AsyncClient(timeout=30) as anon:
            r = await anon.get(url)
            assert r.status_code == 401, r.text
            r = await anon.get(url, headers={"Authorization": "Bearer write-only"})
            assert r.status_code == 403, r.text
            r = await anon.get(
                url, headers={"Authorization": "Bearer write-only", "Accept": "application/json"}
            )
            assert r.status_code == 403
        await stack.http.post(f"/v1/runs/{run['run_id']}/cancel", json={})


async def test_web_ui_current_details_follow_the_step(dev_client: Client, task_queue: str) -> None:
    defn = definition(
        [
            {"id": "greet", "action": "llm_call", "prompt": "hi"},
            {"id": "nap", "action": "wait", "duration": "1h"},
        ]
    )
    async with make_worker(dev_client, task_queue):
        handle = await start(dev_client, task_queue, run_input(defn))
        details = ""
        for _ in range(1200):
            meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
            details = meta.current_details
            if "nap" in details:
                break
            await asyncio.sleep(0.05)
        assert "step 2/2 `nap`" in details and "50% done" in details, details
        await handle.cancel()
