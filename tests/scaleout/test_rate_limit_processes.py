"""An endpoint's rate limit held across two worker processes sharing one PostgreSQL
store: the request times counted at the model server never put more calls in a minute
than `requests_per_minute`, both workers made calls, and the runs that waited for their
turn showed it in their state while they waited."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from tests.databases import new_postgres_url
from tests.fakes.openai_server import serve_fake_llm
from tests.scaleout.cluster import Cluster, run_cluster

pytestmark = pytest.mark.timeout(300)
LIMIT = 2


async def _llm_workers(c: Cluster, run_id: str) -> set[str]:
    """The identities of the workers that ran the run's model calls."""
    history = await c.client.get_workflow_handle(run_id).fetch_history()
    scheduled = {
        e.event_id
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "duratask.llm.complete"
    }
    return {
        e.activity_task_started_event_attributes.identity
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
    }


async def test_two_worker_processes_share_one_endpoint_limit(
    dev_client: Client, task_queue: str, tmp_path: Path
) -> None:
    async with serve_fake_llm() as fake:
        endpoints = {
            "limited": {
                "kind": "openai",
                "base_url": f"{fake.url}/v1",
                "default_model": "pause",
                "requests_per_minute": LIMIT,
            }
        }
        async with run_cluster(
            dev_client, task_queue, new_postgres_url(), tmp_path, gateways=1, workers=2,
            # one activity slot each, and each call takes 2 s: the calls that start
            # together go to both workers
            DURATASK_MAX_CONCURRENT_ACTIVITIES="1",
            DURATASK_MODEL_ENDPOINTS=json.dumps(endpoints),
            DURATASK_DEFAULT_ENDPOINT="limited",
            DURATASK_RATE_LIMIT_INLINE_WAIT_S="0",
        ) as c:  # fmt: skip
            body = {"id": "limited", "steps": [{"id": "ask", "action": "llm_call",
                                                "prompt": "hello"}]}  # fmt: skip
            async with c.http(0) as http:
                r = await http.put("/v1/definitions/limited", json=body)
                assert r.status_code == 201, r.text
                runs = [
                    (await http.post("/v1/runs", json={"definition_id": "limited"})).json()[
                        "run_id"
                    ]
                    for _ in range(2 * LIMIT)
                ]

                async def waiting() -> list[dict[str, Any]]:
                    while True:
                        states = [(await http.get(f"/v1/runs/{r}")).json() for r in runs]
                        held = [
                            s for s in states
                            if s["steps"] and s["steps"][0].get("waiting_for_rate_limit")
                        ]  # fmt: skip
                        if len(held) == LIMIT:
                            return held
                        await asyncio.sleep(0.5)

                held = await asyncio.wait_for(waiting(), 90)
                for s in held:
                    wait = s["steps"][0]["waiting_for_rate_limit"]
                    assert wait["endpoint"] == "limited" and wait["wait_s"] > 30

                async def done(run_id: str) -> dict[str, Any]:
                    for _ in range(4):
                        r = await http.get(f"/v1/runs/{run_id}/result", params={"wait": 50})
                        if r.json()["done"]:
                            return r.json()["state"]  # type: ignore[no-any-return]
                    raise AssertionError(f"{run_id} did not end")

                states = await asyncio.gather(*(done(r) for r in runs))
            assert all(s["status"] == "completed" for s in states), [s["error"] for s in states]
            workers: set[str] = set()
            for r in runs:
                workers |= await _llm_workers(c, r)
            pids = {w.split("@")[0] for w in workers}
            assert pids == {str(w.pid) for w in c.workers}  # both processes made calls
    times = sorted(fake.times("pause"))
    assert len(times) == 2 * LIMIT
    # no 60-second window held more than the limit at the server (slack for the time
    # between a call's start and its request's arrival on a loaded machine)
    for i in range(len(times) - LIMIT):
        assert times[i + LIMIT] - times[i] >= 58.0, times
    waited = [e for s in states for e in s["events"] if e["type"] == "llm.waiting_for_rate_limit"]
    assert len(waited) == LIMIT
