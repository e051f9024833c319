"""Owners and teams against the real gateway and worker (docs/security.md).

Six callers: writer A (team `blue`), writer B, a reader, an approver, an admin and no
token. `test_every_route_for_every_identity` takes the route list from the OpenAPI
document, so a route added without an expectation here fails it. The other tests
reproduce each ownership finding of the security review: a writer acting on another
writer's run, starting a run in another's name, switching every schedule off, and
the gateway cancelling a workflow that is not a duratask run at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from tests.stack import Stack, run_stack

KEYS: list[dict[str, Any]] = [
    {"key": "k-ann", "identity": "ann", "scopes": ["tasks:read", "tasks:write"],
     "groups": ["blue"]},
    {"key": "k-bob", "identity": "bob", "scopes": ["tasks:read", "tasks:write"]},
    {"key": "k-cat", "identity": "cat", "scopes": ["tasks:read", "tasks:write"],
     "groups": ["blue"]},
    {"key": "k-rae", "identity": "rae", "scopes": ["tasks:read"]},
    {"key": "k-pat", "identity": "pat", "scopes": ["tasks:read", "tasks:approve"]},
    {"key": "k-root", "identity": "root",
     "scopes": ["tasks:read", "tasks:write", "tasks:approve", "tasks:admin"]},
]  # fmt: skip
TOKENS = {"anon": None, "reader": "k-rae", "approver": "k-pat", "B": "k-bob", "A": "k-ann",
          "admin": "k-root"}  # fmt: skip
IDENTITIES = list(TOKENS)  # the order requests go in: the owner and the admin last


def auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def gated(def_id: str) -> dict[str, Any]:
    """Parks at an approval step that needs two of pat and root: a vote leaves it waiting."""
    return {
        "id": def_id,
        "steps": [
            {"id": "review", "action": "approval", "approvers": ["pat", "root"],
             "min_approvals": 2, "timeout": "1h"},
            {"id": "after", "action": "llm_call", "prompt": "done"},
        ],
    }  # fmt: skip


def quick(def_id: str) -> dict[str, Any]:
    return {"id": def_id, "steps": [{"id": "say", "action": "llm_call", "prompt": "hi"}]}


@dataclass
class Owned:
    """One writer's things: a gated definition and run, a finished run, a schedule."""

    gated: str
    quick: str
    parked: str  # a run waiting at the approval step
    parked2: str  # another, for bulk-cancel
    done: str  # a finished run
    schedule: str


async def call(s: Stack, who: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {**auth(TOKENS.get(who, who)), **kw.pop("headers", {})}
    return await s.http.request(method, path, headers=headers, **kw)


async def wait_for(s: Stack, key: str, run_id: str, status: str) -> None:
    for _ in range(300):
        r = await s.http.get(f"/v1/runs/{run_id}", headers=auth(key))
        if r.status_code == 200 and r.json()["status"] == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{run_id} never became {status}")


async def setup_writer(s: Stack, key: str, prefix: str) -> Owned:
    for body in (gated(f"{prefix}-gated"), quick(f"{prefix}-quick")):
        r = await s.http.put(f"/v1/definitions/{body['id']}", json=body, headers=auth(key))
        assert r.status_code == 201, r.text
    runs = []
    for def_id in (f"{prefix}-gated", f"{prefix}-gated", f"{prefix}-quick"):
        r = await s.http.post("/v1/runs", json={"definition_id": def_id}, headers=auth(key))
        assert r.status_code == 201, r.text
        runs.append(r.json()["run_id"])
    await wait_for(s, key, runs[0], "awaiting_approval")
    await wait_for(s, key, runs[1], "awaiting_approval")
    r = await s.http.get(f"/v1/runs/{runs[2]}/result", params={"wait": 30}, headers=auth(key))
    assert r.json()["status"] == "completed", r.text
    r = await s.http.post(
        "/v1/schedules",
        json={"definition_id": f"{prefix}-quick", "every": "1h", "paused": True},
        headers=auth(key),
    )
    assert r.status_code == 201, r.text
    parked, parked2, done = runs
    return Owned(f"{prefix}-gated", f"{prefix}-quick", parked, parked2, done, r.json()["id"])


async def cli(s: Stack, key: str, *args: str, cwd: Path) -> tuple[int, str]:
    env = {**os.environ, "DURATASK_TOKEN": key, "DURATASK_PUBLIC_URL": s.url, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


# ---------------------------------------------------------------- the matrix
# For each route (method, OpenAPI path): the path's parameters and body for a caller
# acting on resources `o` (writer A's; the admin acts on writer B's), and the status
# each identity gets. Anonymous callers get 401 on everything but the health probes.
# The order is the order requests go in: what changes or ends a resource comes last.
Req = Callable[["Owned"], tuple[dict[str, str], dict[str, Any]]]
NONE: Req = lambda o: ({}, {})  # noqa: E731
RUN: Req = lambda o: ({"run_id": o.parked}, {})  # noqa: E731
DONE: Req = lambda o: ({"run_id": o.done}, {})  # noqa: E731
DEF: Req = lambda o: ({"definition_id": o.gated}, {})  # noqa: E731
SCHED: Req = lambda o: ({"schedule_id": o.schedule}, {})  # noqa: E731
VALID = quick("scratch")
HOUR_AGO = (datetime.now(UTC) - timedelta(hours=1)).isoformat()


def s_(reader: int, approver: int, b: int, a: int, admin: int, anon: int = 401) -> dict[str, int]:
    return {"anon": anon, "reader": reader, "approver": approver, "B": b, "A": a,
            "admin": admin}  # fmt: skip


ALL_READ = s_(200, 200, 200, 200, 200)
MATRIX: list[tuple[str, str, Req, dict[str, int]]] = [
    ("GET", "/healthz", NONE, s_(200, 200, 200, 200, 200, anon=200)),
    ("GET", "/readyz", NONE, s_(200, 200, 200, 200, 200, anon=200)),
    ("GET", "/metrics", NONE, s_(200, 200, 200, 200, 200, anon=200)),
    # the codec server answers 404 while encryption is off (this stack), after auth
    ("POST", "/codec/decode", lambda o: ({}, {"json": {"payloads": []}}),
     s_(404, 404, 404, 404, 404)),
    ("POST", "/codec/encode", lambda o: ({}, {"json": {"payloads": []}}),
     s_(403, 403, 404, 404, 404)),
    ("POST", "/codec/ui/{secret}/decode", lambda o: ({"secret": "guess"}, {"json": {"payloads": []}}),
     s_(404, 404, 404, 404, 404, anon=404)),
    ("POST", "/codec/ui/{secret}/encode", lambda o: ({"secret": "guess"}, {"json": {"payloads": []}}),
     s_(404, 404, 404, 404, 404, anon=404)),
    ("GET", "/v1/definitions", NONE, ALL_READ),
    ("GET", "/v1/definitions/{definition_id}", DEF, s_(404, 404, 404, 200, 200)),
    ("GET", "/v1/definitions/{definition_id}/versions", DEF, s_(404, 404, 404, 200, 200)),
    ("GET", "/v1/definitions/{definition_id}/versions/{version}",
     lambda o: ({"definition_id": o.gated, "version": "1"}, {}), s_(404, 404, 404, 200, 200)),
    ("POST", "/v1/definitions/validate", lambda o: ({}, {"json": VALID}), ALL_READ),
    ("GET", "/v1/definitions/{definition_id}/health", DEF, s_(404, 404, 404, 200, 200)),
    ("GET", "/v1/health/regressions", NONE, ALL_READ),
    ("GET", "/v1/stats", NONE, ALL_READ),
    ("GET", "/v1/runs/compare", lambda o: ({}, {"params": {"a": o.done, "b": o.parked}}),
     s_(404, 404, 404, 200, 200)),
    ("GET", "/v1/runs", NONE, ALL_READ),
    ("GET", "/v1/runs/{run_id}", RUN, s_(404, 200, 404, 200, 200)),
    ("GET", "/v1/runs/{run_id}/result", RUN, s_(404, 202, 404, 202, 202)),
    ("GET", "/v1/runs/{run_id}/events",
     lambda o: ({"run_id": o.parked}, {"headers": {"Accept": "application/json"}}),
     s_(404, 200, 404, 200, 200)),
    ("GET", "/v1/runs/{run_id}/ratings", DONE, s_(404, 404, 404, 200, 200)),
    ("GET", "/v1/runs/{run_id}/comments", RUN, s_(404, 200, 404, 200, 200)),
    ("GET", "/v1/ratings", NONE, ALL_READ),
    ("GET", "/v1/handoffs", NONE, ALL_READ),
    ("GET", "/v1/mentions", NONE, ALL_READ),
    ("GET", "/v1/audit", NONE, ALL_READ),
    ("GET", "/v1/approvals", NONE, ALL_READ),
    ("GET", "/v1/schedules", NONE, ALL_READ),
    ("GET", "/v1/schedules/{schedule_id}", SCHED, s_(404, 404, 404, 200, 200)),
    ("GET", "/v1/scheduling", NONE, ALL_READ),
    ("GET", "/v1/streams", NONE, s_(403, 403, 403, 403, 200)),
    ("PUT", "/v1/definitions/{definition_id}",
     lambda o: ({"definition_id": o.gated}, {"json": {**gated(o.gated), "description": "v2"}}),
     s_(403, 403, 404, 201, 201)),
    ("POST", "/v1/definitions/{definition_id}/versions/{version}/promote",
     lambda o: ({"definition_id": o.gated, "version": "1"}, {}), s_(403, 403, 404, 201, 201)),
    ("POST", "/v1/runs", lambda o: ({}, {"json": {"definition_id": o.quick}}),
     s_(403, 403, 404, 201, 201)),
    ("PATCH", "/v1/runs/{run_id}", lambda o: ({"run_id": o.parked}, {"json": {"priority": "high"}}),
     s_(403, 403, 404, 200, 200)),
    ("POST", "/v1/runs/{run_id}/messages",
     lambda o: ({"run_id": o.parked}, {"json": {"mode": "collect", "message": "note"}}),
     s_(403, 403, 404, 202, 202)),
    ("POST", "/v1/runs/{run_id}/approvals",
     lambda o: ({"run_id": o.parked}, {"json": {"decision": "approve"}}),
     s_(403, 200, 403, 403, 200)),
    ("PUT", "/v1/runs/{run_id}/rating", lambda o: ({"run_id": o.done}, {"json": {"score": "up"}}),
     s_(403, 403, 404, 201, 201)),
    ("DELETE", "/v1/runs/{run_id}/rating", DONE, s_(403, 403, 404, 204, 204)),
    ("POST", "/v1/runs/{run_id}/comments",
     lambda o: ({"run_id": o.parked}, {"json": {"body": "looks fine"}}),
     s_(403, 403, 404, 201, 201)),
    ("POST", "/v1/runs/{run_id}/retry", DONE, s_(403, 403, 404, 201, 201)),
    ("POST", "/v1/runs/{run_id}/rerun", lambda o: ({"run_id": o.done}, {"json": {"from_step": "say"}}),
     s_(403, 403, 404, 201, 201)),
    # the parked run waits at an approval, not an input step (409 from the run), and has
    # no budget to raise (422 from the run): who gets that far is what is checked here
    ("POST", "/v1/runs/{run_id}/input/{step_id}",
     lambda o: ({"run_id": o.parked, "step_id": "review"}, {"json": {"value": {}}}),
     s_(403, 403, 404, 409, 409)),
    # a delivered link is its own credential (docs/approvals.md#delivery): a forged one is
    # refused for everyone, with or without a bearer token; test_delivery.py has the rest
    ("GET", "/v1/links/{token}", lambda o: ({"token": "forged.link"}, {}),
     s_(403, 403, 403, 403, 403, anon=403)),
    ("POST", "/v1/links/{token}",
     lambda o: ({"token": "forged.link"}, {"json": {"decision": "approve"}}),
     s_(403, 403, 403, 403, 403, anon=403)),
    ("POST", "/v1/runs/{run_id}/budget",
     lambda o: ({"run_id": o.parked}, {"json": {"max_tokens": 100}}),
     s_(403, 422, 403, 403, 422)),
    ("POST", "/v1/schedules",
     lambda o: ({}, {"json": {"definition_id": o.quick, "every": "2h", "paused": True}}),
     s_(403, 403, 404, 201, 201)),
    ("PATCH", "/v1/schedules/{schedule_id}",
     lambda o: ({"schedule_id": o.schedule}, {"json": {"description": "hourly"}}),
     s_(403, 403, 404, 200, 200)),
    ("POST", "/v1/schedules/{schedule_id}/unpause", SCHED, s_(403, 403, 404, 200, 200)),
    ("POST", "/v1/schedules/{schedule_id}/pause", SCHED, s_(403, 403, 404, 200, 200)),
    ("POST", "/v1/schedules/{schedule_id}/trigger", SCHED, s_(403, 403, 404, 202, 202)),
    ("POST", "/v1/schedules/{schedule_id}/backfill",
     lambda o: ({"schedule_id": o.schedule},
                {"json": {"start_at": HOUR_AGO, "end_at": datetime.now(UTC).isoformat()}}),
     s_(403, 403, 404, 202, 202)),
    ("PUT", "/v1/scheduling", lambda o: ({}, {"json": {"enabled": True}}),
     s_(403, 403, 403, 403, 200)),
    ("POST", "/v1/runs/{run_id}/cancel", RUN, s_(403, 403, 404, 202, 202)),
    ("POST", "/v1/runs/bulk-cancel", lambda o: ({}, {"json": {"run_ids": [o.parked2]}}),
     s_(403, 403, 200, 200, 200)),  # per-run results inside: checked below
    ("DELETE", "/v1/schedules/{schedule_id}", SCHED, s_(403, 403, 404, 204, 204)),
    ("DELETE", "/v1/definitions/{definition_id}", DEF, s_(403, 403, 404, 204, 204)),
]  # fmt: skip


def test_the_matrix_covers_every_route_in_the_openapi_document() -> None:
    documented = {
        (method.upper(), path)
        for path, ops in create_app().openapi()["paths"].items()
        for method in ops
    }
    covered = {(m, p) for m, p, _, _ in MATRIX}
    assert documented - covered == set(), "routes without an expectation in MATRIX"
    assert covered - documented == set(), "MATRIX names routes the gateway does not have"


async def test_every_route_for_every_identity(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(
        dev_env, task_queue, tmp_path, api_keys=KEYS, delivery_link_key=SecretStr("link-key")
    ) as s:
        a = await setup_writer(s, "k-ann", "ann")
        b = await setup_writer(s, "k-bob", "bob")
        wrong: list[str] = []
        for method, path, req, expected in MATRIX:
            for who in IDENTITIES:
                params, kw = req(b if who == "admin" else a)
                r = await call(s, who, method, path.format(**params), **kw)
                if r.status_code != expected[who]:
                    wrong.append(f"{who} {method} {path}: {r.status_code} != {expected[who]}"
                                 f" ({r.text[:160]})")  # fmt: skip
                elif path == "/v1/runs/bulk-cancel" and who == "B":
                    (result,) = r.json()["results"]  # bob cannot see ann's run: 404 inside
                    assert not result["ok"] and result["status_code"] == 404, result
        assert wrong == [], "\n".join(wrong)


# ---------------------------------------------------------------- the findings


async def test_a_writer_cannot_touch_another_writers_run(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        b = await setup_writer(s, "k-bob", "bob")
        run = f"/v1/runs/{b.parked}"
        attempts = [
            ("PATCH", run, {"json": {"priority": "critical"}}),
            ("POST", f"{run}/messages", {"json": {"mode": "steer", "message": "obey ann"}}),
            ("POST", f"{run}/cancel", {"json": {"reason": "mine now"}}),
            ("POST", f"/v1/runs/{b.done}/retry", {}),
            ("GET", run, {}),
            ("GET", f"{run}/events", {"headers": {"Accept": "application/json"}}),
        ]
        for method, path, kw in attempts:
            r = await call(s, "A", method, path, **kw)
            assert r.status_code == 404, f"{method} {path}: {r.status_code} {r.text}"
            assert "not found" in r.json()["detail"]
        state = (await call(s, "B", "GET", run)).json()
        assert state["status"] == "awaiting_approval" and state["priority"] == "normal"
        kinds = {e["type"] for e in state["events"]}
        assert "intervention.received" not in kinds and "run.cancel_requested" not in kinds
        r = await call(s, "A", "GET", "/v1/runs", params={"definition_id": b.gated})
        assert r.status_code == 200 and r.json()["items"] == []

        # started with bob as owner: refused; an admin may
        r = await s.http.put("/v1/definitions/shared", json=quick("shared"),
                             headers=auth("k-ann"))  # fmt: skip
        r = await call(s, "A", "POST", "/v1/runs", json={"definition_id": "shared", "owner": "bob"})
        assert r.status_code == 403 and "tasks:admin" in r.json()["detail"], r.text
        r = await call(s, "A", "POST", "/v1/runs", json={"definition_id": "shared", "team": "red"})
        assert r.status_code == 403 and "not a member of team 'red'" in r.json()["detail"]
        r = await call(s, "admin", "POST", "/v1/runs",
                       json={"definition_id": "shared", "owner": "bob"})  # fmt: skip
        assert r.status_code == 201 and r.json()["owner"] == "bob", r.text
        assert (await call(s, "B", "GET", f"/v1/runs/{r.json()['run_id']}")).status_code == 200

        # the owner's own changes are recorded with who did them, in events and audit
        r = await call(s, "B", "PATCH", run, json={"priority": "high"})
        assert r.status_code == 200
        await call(s, "B", "POST", f"{run}/cancel", json={"reason": "done with it"})
        for _ in range(600):
            events = (await call(s, "B", "GET", run)).json()["events"]
            by = {e["type"]: e["data"] for e in events}
            if "run.priority_changed" in by and "run.cancel_requested" in by:
                break
            await asyncio.sleep(0.1)
        assert by["run.priority_changed"]["by"] == "bob"
        assert by["run.cancel_requested"]["by"] == "bob"
        r = await call(s, "B", "GET", "/v1/audit", params={"resource_id": b.parked})
        acts = [(e["actor"], e["action"]) for e in r.json()["items"]]
        assert acts == [("bob", "run.cancel"), ("bob", "run.priority"), ("bob", "run.start")]
        r = await call(s, "A", "GET", "/v1/audit", params={"resource_id": b.parked})
        assert r.json()["items"] == []  # not ann's to see
        code, out = await cli(s, "k-bob", "audit", "--id", b.parked, "--json", cwd=tmp_path)
        assert code == 0, out
        assert [e["action"] for e in json.loads(out)] == ["run.cancel", "run.priority", "run.start"]
        code, out = await cli(s, "k-bob", "audit", "--kind", "run", cwd=tmp_path)
        assert code == 0 and "run.cancel" in out and "bob" in out, out
        r = await call(s, "admin", "GET", "/v1/audit", params={"kind": "run", "limit": 2})
        page = r.json()
        assert len(page["items"]) == 2 and page["next_page_token"]
        nxt = await call(
            s,
            "admin",
            "GET",
            "/v1/audit",
            params={"kind": "run", "limit": 2, "page_token": page["next_page_token"]},
        )
        assert {e["id"] for e in nxt.json()["items"]}.isdisjoint(e["id"] for e in page["items"])


async def test_teams_share_and_others_do_not_see(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS) as s:
        r = await s.http.put("/v1/definitions/blue-job", json=quick("blue-job"),
                             params={"team": "blue"}, headers=auth("k-ann"))  # fmt: skip
        assert r.status_code == 201 and r.json()["team"] == "blue", r.text
        r = await s.http.put("/v1/definitions/red-job", json=quick("red-job"),
                             params={"team": "red"}, headers=auth("k-ann"))  # fmt: skip
        assert r.status_code == 403, r.text
        # cat (team blue) sees ann's team definition and runs it; bob does not see it
        r = await s.http.post("/v1/runs", json={"definition_id": "blue-job", "team": "blue"},
                              headers=auth("k-cat"))  # fmt: skip
        assert r.status_code == 201 and r.json()["owner"] == "cat", r.text
        run_id = r.json()["run_id"]
        r = await s.http.post("/v1/runs", json={"definition_id": "blue-job"},
                              headers=auth("k-bob"))  # fmt: skip
        assert r.status_code == 404
        r = await s.http.get(f"/v1/runs/{run_id}/result", params={"wait": 30},
                             headers=auth("k-ann"))  # fmt: skip
        assert r.status_code == 200 and r.json()["status"] == "completed"
        assert (await call(s, "B", "GET", f"/v1/runs/{run_id}")).status_code == 404
        for key, expect in (("k-ann", True), ("k-bob", False), ("k-root", True)):
            for _ in range(600):  # visibility is eventually consistent
                r = await s.http.get("/v1/runs", headers=auth(key))
                if (run_id in {i["run_id"] for i in r.json()["items"]}) == expect:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"{key} listing {run_id}: expected {expect}")
        peek = {"id": "peek", "steps": [{"id": "s", "action": "sub_task", "task": "blue-job"}]}
        r = await call(s, "B", "PUT", "/v1/definitions/peek", json=peek)
        assert r.status_code == 422 and "blue-job" in r.text, r.text  # not his: unknown
        r = await call(s, "A", "PUT", "/v1/definitions/peek", json=peek)
        assert r.status_code == 201, r.text
        listed = {d["id"] for d in (await call(s, "B", "GET", "/v1/definitions")).json()["items"]}
        assert "blue-job" not in listed
        r = await call(s, "B", "PUT", "/v1/definitions/blue-job",
                       json={**quick("blue-job"), "description": "bob's now"})  # fmt: skip
        assert r.status_code == 404, r.text  # may not publish what he may not see
        r = await s.http.put("/v1/definitions/blue-job",
                             json={**quick("blue-job"), "description": "v2 by cat"},
                             headers=auth("k-cat"))  # fmt: skip
        assert r.status_code == 201 and r.json()["owner"] == "ann", r.text
        for key, total in (("k-bob", 0), ("k-ann", 1)):  # the dev server is shared: per def
            r = await s.http.get("/v1/stats", params={"definition_id": "blue-job"},
                                 headers=auth(key))  # fmt: skip
            assert r.json()["total"] == total, (key, r.json())


async def test_scheduling_switch_needs_admin(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS, worker=False) as s:
        await s.http.put("/v1/definitions/job", json=quick("job"), headers=auth("k-ann"))
        r = await s.http.post("/v1/schedules", json={"definition_id": "job", "every": "1h"},
                              headers=auth("k-ann"))  # fmt: skip
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        r = await call(s, "B", "PUT", "/v1/scheduling", json={"enabled": False})
        assert r.status_code == 403 and "tasks:admin" in r.json()["detail"]
        r = await call(s, "A", "GET", f"/v1/schedules/{sid}")
        assert r.json()["status"] == "active" and not r.json()["paused"]
        assert (await call(s, "B", "GET", f"/v1/schedules/{sid}")).status_code == 404
        assert sid not in {
            v["id"] for v in (await call(s, "B", "GET", "/v1/schedules")).json()["items"]
        }
        r = await call(s, "admin", "PUT", "/v1/scheduling", json={"enabled": False})
        assert r.status_code == 200 and r.json()["paused"] == [sid]
        r = await call(s, "admin", "GET", "/v1/audit", params={"kind": "scheduling"})
        (entry,) = r.json()["items"]
        assert entry["actor"] == "root" and entry["detail"]["enabled"] is False
        r = await call(s, "admin", "PUT", "/v1/scheduling", json={"enabled": True})
        assert r.status_code == 200


async def test_the_gateway_acts_only_on_duratask_runs(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """A workflow of another type on the same namespace is 404 on every run route, for
    every caller, the admin included; it is not cancelled."""
    client: Client = dev_env.client
    foreign = f"payroll-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        "PayrollWorkflow", id=foreign, task_queue=f"nobody-{task_queue}"
    )
    try:
        async with run_stack(dev_env, task_queue, tmp_path, api_keys=KEYS, worker=False) as s:
            for who in ("A", "admin"):
                for method, path, kw in (
                    ("POST", f"/v1/runs/{foreign}/cancel", {}),
                    ("GET", f"/v1/runs/{foreign}", {}),
                    ("PATCH", f"/v1/runs/{foreign}", {"json": {"priority": "low"}}),
                    ("POST", f"/v1/runs/{foreign}/messages", {"json": {"message": "hi"}}),
                    ("POST", f"/v1/runs/{foreign}/comments", {"json": {"body": "hi"}}),
                    ("GET", f"/v1/runs/{foreign}/events",
                     {"headers": {"Accept": "application/json"}}),
                ):  # fmt: skip
                    r = await call(s, who, method, path, **kw)
                    assert r.status_code == 404, f"{who} {method} {path}: {r.text}"
            r = await call(s, "admin", "POST", "/v1/runs/bulk-cancel", json={"run_ids": [foreign]})
            assert r.json()["results"][0]["status_code"] == 404
        desc = await handle.describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING
        history = [e.event_type for e in (await handle.fetch_history()).events]
        assert all("CANCEL" not in str(t) and "SIGNALED" not in str(t) for t in history), history
    finally:
        await handle.terminate("test over")
