"""Events: auth like every read endpoint, the Web UI's current details, and the stream
carried across continue-as-new through `RunInput.stream_state`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient, WorkflowStreamState
from temporalio.contrib.workflow_streams._types import _encode_payload, _WorkflowStreamWireItem
from temporalio.testing import WorkflowEnvironment

from duratask.settings import ApiKey
from tests.helpers import definition, make_worker, run_input, start
from tests.stack import run_stack
from workflows.events import wire

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
        for _ in range(200):
            meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
            details = meta.current_details
            if "nap" in details:
                break
            await asyncio.sleep(0.05)
        assert "step 2/2 `nap`" in details and "50% done" in details, details
        await handle.cancel()


async def test_stream_state_carried_into_a_new_run(dev_client: Client, task_queue: str) -> None:
    """What a continue-as-new hands over: offsets continue, no second `run.queued`."""
    converter = dev_client.data_converter.payload_converter
    prior = [
        wire("run-x", t, datetime.now(UTC)) for t in ("run.queued", "run.started", "step.started")
    ]
    state = WorkflowStreamState(
        log=[
            _WorkflowStreamWireItem("events", _encode_payload(converter.to_payloads([p])[0]))
            for p in prior
        ],
        base_offset=0,
    )
    inp = run_input(definition([{"id": "greet", "action": "llm_call", "prompt": "hi"}]))
    inp.stream_state = state
    async with make_worker(dev_client, task_queue):
        handle = await start(dev_client, task_queue, inp)
        await handle.result()
        items = [
            (i.offset, i.data["type"])
            async for i in WorkflowStreamClient.create(dev_client, handle.id).subscribe(["events"])
        ]
    assert items[:4] == [(0, "run.queued"), (1, "run.started"), (2, "step.started"),
                         (3, "run.started")]  # fmt: skip
    assert [t for _, t in items].count("run.queued") == 1
    assert items[-1][1] == "run.completed"
