"""Two gateways and two workers, separate processes, on one dev server and one
PostgreSQL store: what a deployment with replicas must guarantee.

- a run started on gateway A is followed over SSE on gateway B, every event once;
- steer, approve and cancel go through B;
- kill -9 of the worker running a step: the other one finishes the run, and no side
  effect is done twice (counted at a receiving HTTP server);
- a schedule fires once per tick, whatever the number of processes;
- fairness across two owners holds across both workers;
- a process with another task queue refuses to start, naming the setting.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import Client

from tests.databases import new_postgres_url
from tests.scaleout.cluster import Cluster, run_cluster, sse_events
from tests.stack import serve_asgi

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
async def cluster(dev_client: Client, task_queue: str, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with run_cluster(dev_client, task_queue, new_postgres_url(), tmp_path) as c:
        yield c


def defn(id_: str, steps: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    return {"id": id_, "name": id_, "model": {"provider": "scripted", "name": "echo"},
            "steps": steps, **kw}  # fmt: skip


async def result(c: Cluster, gateway: int, run_id: str, wait: float = 60) -> dict[str, Any]:
    async with c.http(gateway) as http:
        r = await http.get(f"/v1/runs/{run_id}/result", params={"wait": wait})
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


async def test_started_on_a_followed_on_b_steered_approved_through_b(cluster: Cluster) -> None:
    slow = {"provider": "scripted", "name": "script",
            "script": [{"text": "first draft, slowly", "delay": 4}, {"text": "steered answer"}]}  # fmt: skip
    body = defn(
        "scale-flow",
        [
            {"id": "draft", "action": "llm_call", "prompt": "draft", "model": slow},
            {
                "id": "ok",
                "action": "approval",
                "approvers": ["approver@example.com"],
                "timeout": "10m",
            },
            {"id": "done", "action": "llm_call", "prompt": "after {{ steps.draft.output }}"},
        ],
    )
    async with cluster.http(0) as a, cluster.http(1) as b, cluster.http(1, "approver") as b_appr:
        assert (await a.put("/v1/definitions/scale-flow", json=body)).status_code in (200, 201)
        run_id = (await a.post("/v1/runs", json={"definition_id": "scale-flow"})).json()["run_id"]
        follow = asyncio.create_task(sse_events(b, run_id))
        # steer through B while the slow model call runs
        for _ in range(600):
            state = (await b.get(f"/v1/runs/{run_id}")).json()
            if state.get("current_step") == "draft":
                break
            await asyncio.sleep(0.1)
        r = await b.post(
            f"/v1/runs/{run_id}/messages", json={"mode": "steer", "message": "shorter"}
        )
        assert r.status_code in (200, 202), r.text
        # approve through B
        for _ in range(200):
            state = (await b.get(f"/v1/runs/{run_id}")).json()
            if state["status"] == "awaiting_approval":
                break
            await asyncio.sleep(0.1)
        assert state["status"] == "awaiting_approval", state
        r = await b_appr.post(f"/v1/runs/{run_id}/approvals", json={"decision": "approve"})
        assert r.status_code in (200, 202), r.text
        events = await asyncio.wait_for(follow, 90)
    done = await result(cluster, 0, run_id)
    assert done["status"] == "completed", done
    live = [e for e in events if e["type"] in ("llm.delta", "llm.retry")]
    durable = [e for e in events if e not in live]
    offsets = [e["offset"] for e in durable]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), offsets  # once, in order
    assert [e["_sse_id"] for e in durable] == [str(o) for o in offsets]
    # the model's text, relayed from the worker that ran it to gateway B through the store
    assert live and all(e["_sse_id"].startswith(f"{e['offset']}.") for e in live), live
    types = [e["type"] for e in events]
    assert types[-1] == "run.completed"
    steers = [e for e in events if e["type"] == "intervention.received"]
    assert steers and "shorter" in str(steers[0]), steers
    decided = [e for e in events if e["type"] == "approval.decided"]
    assert decided and "approver@example.com" in str(decided[0]), decided


async def test_cancel_through_b_reaches_a_run_started_on_a(cluster: Cluster) -> None:
    body = defn("scale-wait", [{"id": "nap", "action": "wait", "duration": "10m"}])
    async with cluster.http(0) as a, cluster.http(1) as b:
        await a.put("/v1/definitions/scale-wait", json=body)
        run_id = (await a.post("/v1/runs", json={"definition_id": "scale-wait"})).json()["run_id"]
        r = await b.post(f"/v1/runs/{run_id}/cancel", json={"reason": "through b"})
        assert r.status_code in (200, 202), r.text
    done = await result(cluster, 0, run_id)
    assert done["status"] == "cancelled", done


class Receiver:
    """A loopback server that counts side effects by their idempotency key."""

    def __init__(self) -> None:
        self.effects: Counter[str] = Counter()
        self.keys: dict[str, set[str]] = {}

    def app(self) -> Starlette:
        async def effect(request: Request) -> Response:
            name = request.query_params["name"]
            key = request.headers.get("idempotency-key", "")
            self.keys.setdefault(name, set()).add(key)
            self.effects[name] += 1
            return JSONResponse({"ok": True})

        async def slow(_: Request) -> Response:
            await asyncio.sleep(6)
            return PlainTextResponse("late")

        return Starlette(routes=[Route("/effect", effect, methods=["POST"]),
                                 Route("/slow", slow)])  # fmt: skip


async def test_kill_9_of_the_busy_worker_the_other_finishes_effects_once(
    cluster: Cluster,
) -> None:
    receiver = Receiver()
    async with serve_asgi(receiver.app(), force_exit=True) as url:

        def post(name: str) -> dict[str, Any]:
            return {"id": name, "action": "tool_call", "tool": "http_request",
                    "args": {"method": "POST", "url": f"{url}/effect?name={name}", "body": {}}}  # fmt: skip

        slow = {"provider": "scripted", "name": "script", "script": [{"text": "done", "delay": 6}]}
        body = defn(
            "scale-kill",
            [post("before"),
             {"id": "think", "action": "llm_call", "prompt": "think", "model": slow},
             post("after")],
            tools=["http_request"],
        )  # fmt: skip
        async with cluster.http(0) as a:
            assert (await a.put("/v1/definitions/scale-kill", json=body)).status_code in (200, 201)
            run_id = (await a.post("/v1/runs", json={"definition_id": "scale-kill"})).json()[
                "run_id"
            ]
        handle = cluster.client.get_workflow_handle(run_id)
        busy = None
        for _ in range(300):
            desc = await handle.describe()
            started = [
                p for p in desc.raw_description.pending_activities
                if p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                and p.last_worker_identity
            ]  # fmt: skip
            if started and receiver.effects["before"]:
                busy = cluster.worker_by_identity(started[0].last_worker_identity)
                break
            await asyncio.sleep(0.1)
        assert busy is not None, "the slow step never started"
        busy.kill9()
        survivor = next(w for w in cluster.workers if w is not busy)
        assert survivor.alive()
        done = await result(cluster, 1, run_id, wait=90)
    assert done["status"] == "completed", done
    assert receiver.effects == Counter({"before": 1, "after": 1}), receiver.effects
    assert all(len(keys) == 1 for keys in receiver.keys.values())


async def test_a_schedule_fires_once_per_tick(cluster: Cluster) -> None:
    body = defn("scale-tick", [{"id": "t", "action": "llm_call", "prompt": "tick"}])
    async with cluster.http(0) as a, cluster.http(1) as b:
        await a.put("/v1/definitions/scale-tick", json=body)
        r = await a.post("/v1/schedules", json={"id": f"tick-{uuid.uuid4().hex[:6]}",
                                                "definition_id": "scale-tick", "every": "2s",
                                                "overlap": "allow_all"})  # fmt: skip
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        await asyncio.sleep(9)
        assert (await b.post(f"/v1/schedules/{sid}/pause", json={})).status_code == 200
        await asyncio.sleep(1)
        view = (await b.get(f"/v1/schedules/{sid}")).json()
        await b.delete(f"/v1/schedules/{sid}")
    # every run the schedule started, from Temporal itself (not the schedule's summary)
    runs = [w async for w in cluster.client.list_workflows(f'DurataskSchedule = "{sid}"')]
    ticks = Counter(w.id for w in runs)
    assert 3 <= len(runs) <= 6, [w.id for w in runs]
    assert all(n == 1 for n in ticks.values()), ticks  # one workflow per fire time
    assert view["num_actions"] == len(runs), (view["num_actions"], [w.id for w in runs])
    scheduled = [r["scheduled_at"] for r in view["recent_runs"]]
    assert len(scheduled) == len(set(scheduled))


async def test_fairness_across_two_owners_holds_across_both_workers(
    dev_client: Client, task_queue: str, tmp_path: Path
) -> None:
    # one activity slot per worker: the queue decides who goes next
    async with run_cluster(
        dev_client, task_queue, new_postgres_url(), tmp_path,
        gateways=1, workers=2, DURATASK_MAX_CONCURRENT_ACTIVITIES="1",
    ) as c:  # fmt: skip
        slow = {"provider": "scripted", "name": "script", "script": [{"text": "x", "delay": 1}]}
        body = defn("scale-fair", [{"id": "s", "action": "llm_call", "prompt": "p", "model": slow}])
        async with c.http(0, "alice") as alice, c.http(0, "bob") as bob:
            r = await alice.put("/v1/definitions/scale-fair", params={"team": "crew"}, json=body)
            assert r.status_code == 201, r.text
            a_runs = [
                (await alice.post("/v1/runs", json={"definition_id": "scale-fair"})).json()[
                    "run_id"
                ]
                for _ in range(8)
            ]
            b_runs = [
                (
                    await bob.post(
                        "/v1/runs",
                        json={"definition_id": "scale-fair", "owner": "bob", "team": "crew"},
                    )
                ).json()["run_id"]
                for _ in range(4)
            ]
        finished: dict[str, float] = {}

        async def until_done(run_id: str) -> None:
            done = await result(c, 0, run_id, wait=120)
            assert done["status"] == "completed", done
            finished[run_id] = asyncio.get_running_loop().time()

        await asyncio.gather(*(until_done(r) for r in a_runs + b_runs))
    order = sorted(finished, key=finished.__getitem__)
    rank = {r: i for i, r in enumerate(order)}
    bob_second = sorted(rank[r] for r in b_runs)[1]
    alice_after = [r for r in a_runs if rank[r] > bob_second]
    # first-come-first-served runs all of bob's after all of alice's; fair queues let
    # bob's interleave with the alice backlog left when they arrived
    assert len(alice_after) >= 2, (order, a_runs, b_runs)
    assert max(rank[r] for r in b_runs) < max(rank[r] for r in a_runs)


async def test_a_worker_with_another_task_queue_refuses_to_start(cluster: Cluster) -> None:
    odd = cluster.spawn("worker", {"DURATASK_TASK_QUEUE": "some-other-queue"})
    code = await asyncio.to_thread(odd.popen.wait, 60)
    assert code != 0
    out = odd.output()
    assert "DURATASK_TASK_QUEUE is 'some-other-queue' here but" in out, out[-2000:]
    cluster.workers.remove(odd)
