"""Schedules on a real Temporal dev server, through the real gateway and worker.

Short intervals (`every: 1s`/`2s`) and `trigger`/`backfill` keep these fast; waits
poll with generous timeouts.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from tests.stack import Stack

T = TypeVar("T")

HELLO: dict[str, Any] = {
    "id": "hello",
    "inputs": {"name": {"type": "string", "default": "world"}},
    "steps": [{"id": "greet", "action": "llm_call", "prompt": "Hello, {{ input.name }}!"}],
}
SLOW = {
    "id": "slow",
    "steps": [
        {
            "id": "think",
            "action": "llm_call",
            "prompt": "take your time",
            "model": {"provider": "scripted", "name": "script",
                      "script": [{"text": "done", "delay": 6}]},
        }
    ],
}  # fmt: skip
FAILING = {
    "id": "failing",
    "steps": [
        {
            "id": "boom",
            "action": "llm_call",
            "prompt": "fail",
            "model": {"provider": "scripted", "name": "script",
                      "script": [{"error": {"status": 400, "message": "bad request"}}]},
        }
    ],
}  # fmt: skip


async def until(fn: Callable[[], Awaitable[T | None]], timeout: float = 45, what: str = "") -> T:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await fn()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or fn}")
        await asyncio.sleep(0.5)


async def create(stack: Stack, **body: Any) -> dict[str, Any]:
    r = await stack.http.post("/v1/schedules", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def show(stack: Stack, sid: str) -> dict[str, Any]:
    r = await stack.http.get(f"/v1/schedules/{sid}")
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def times(view: dict[str, Any]) -> list[datetime]:
    return [datetime.fromisoformat(t) for t in view["next_fire_times"]]


async def test_each_spec_kind_reads_back_description_and_next_fire_times(stack: Stack) -> None:
    await stack.put_definition(HELLO)

    daily = await create(stack, definition_id="hello", cron="0 9 * * *", timezone="Europe/Paris")
    assert daily["id"].startswith("sched-hello-")
    assert daily["human"] == "Daily at 9:00" and daily["timezone"] == "Europe/Paris"
    nxt = times(daily)
    assert len(nxt) == 5
    for t in nxt:  # 9:00 in Paris is 8:00 or 7:00 UTC
        assert t.astimezone(UTC).hour in (7, 8) and t.minute == 0
    day = (timedelta(days=1), timedelta(hours=23), timedelta(hours=25))
    assert all(b - a in day for a, b in itertools.pairwise(nxt))

    mtw = await create(stack, definition_id="hello", cron="0 14 * * 1,2,3", id="mon-tue-wed")
    assert mtw["id"] == "sched-mon-tue-wed"
    assert mtw["human"] == "Every Mon, Tue, Wed at 14:00"
    assert {t.weekday() for t in times(mtw)} <= {0, 1, 2} and len(times(mtw)) == 5

    # day-of-week 0 is Sunday, in Temporal as in the parser
    sunday = await create(stack, definition_id="hello", cron="0 10 * * 0")
    assert sunday["human"] == "Every Sun at 10:00"
    assert {t.weekday() for t in times(sunday)} == {6}

    monthly = await create(stack, definition_id="hello", cron="0 8 15 * *")
    assert monthly["human"] == "Monthly on day 15 at 8:00"
    assert {(t.day, t.hour) for t in times(monthly)} == {(15, 8)}

    text = await create(stack, definition_id="hello", text="every weekday at 9:30")
    assert text["human"] == "Every weekday at 9:30"
    assert text["spec"]["kind"] == "text" and text["spec"]["expression"] == "30 9 * * 1-5"
    assert {t.weekday() for t in times(text)} <= {0, 1, 2, 3, 4}
    assert {(t.hour, t.minute) for t in times(text)} == {(9, 30)}

    every = await create(stack, definition_id="hello", every="15m", description="health check")
    assert every["human"] == "Every 15 minutes" and every["description"] == "health check"
    gaps = {b - a for a, b in itertools.pairwise(times(every))}
    assert gaps == {timedelta(minutes=15)}

    at = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0, second=0)
    once = await create(stack, definition_id="hello", at=at.isoformat())
    assert times(once) == [at]
    assert once["human"].startswith("Once at ")

    start = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    window = await create(stack, definition_id="hello", cron="0 12 * * *", jitter="10m",
                          start_at=start.isoformat(),
                          end_at=(start + timedelta(days=3)).isoformat())  # fmt: skip
    assert window["jitter"] == "10m"
    assert 2 <= len(times(window)) <= 3 and all(start <= t for t in times(window))
    assert all(t.hour == 12 and t.minute < 10 for t in times(window))

    listed = (await stack.http.get("/v1/schedules")).json()
    assert {s["id"] for s in listed["items"]} == {
        s["id"] for s in (daily, mtw, sunday, monthly, text, every, once, window)
    }
    assert listed["scheduling_enabled"] is True


async def test_every_2s_produces_runs_marked_schedule(stack: Stack) -> None:
    await stack.put_definition(HELLO)
    sched = await create(stack, definition_id="hello", every="2s", input={"name": "clock"},
                         owner="ops", id="tick")  # fmt: skip
    sid = sched["id"]

    async def two_done() -> dict[str, Any] | None:
        view = await show(stack, sid)
        done = [r for r in view["recent_runs"] if r["status"] == "completed"]
        return view if len(done) >= 2 else None

    view = await until(two_done, what="two completed scheduled runs")
    assert view["last_result"] == "Hello, clock!"
    run_id = view["recent_runs"][-1]["run_id"]
    assert run_id.startswith(f"run-{sid}-")  # Temporal appends the fire time
    run = (await stack.http.get(f"/v1/runs/{run_id}")).json()
    assert run["trigger"] == "schedule" and run["schedule_id"] == sid
    assert run["owner"] == "ops" and run["definition_version"] == 1
    assert run["source"] == {"kind": "schedule", "schedule_id": sid}

    async def proactive() -> list[dict[str, Any]] | None:
        items = (await stack.http.get("/v1/runs", params={"trigger": "schedule"})).json()["items"]
        # the dev server is shared by the session: other tests' schedules fire too
        mine = [i for i in items if i["run_id"].startswith(f"run-{sid}-")]
        return mine if len(mine) >= 2 else None

    items = await until(proactive, what="scheduled runs in visibility")
    assert all(i["proactive"] and i["trigger"] == "schedule" for i in items)

    # no version pinned: a firing after an edit runs the new version
    await stack.put_definition({**HELLO, "steps": [{**HELLO["steps"][0], "prompt": "Hi v2"}]})

    async def v2_ran() -> bool:
        return (await show(stack, sid))["last_result"] == "Hi v2"

    await until(v2_ran, what="a run of version 2")
    r = await stack.http.delete(f"/v1/schedules/{sid}")
    assert r.status_code == 204
    assert (await stack.http.get(f"/v1/schedules/{sid}")).status_code == 404


async def test_pinned_version_keeps_running_that_version(stack: Stack) -> None:
    await stack.put_definition(HELLO)
    sched = await create(stack, definition_id="hello", version=1, cron="0 0 1 1 *")
    await stack.put_definition({**HELLO, "steps": [{**HELLO["steps"][0], "prompt": "v2"}]})
    r = await stack.http.post(f"/v1/schedules/{sched['id']}/trigger")
    assert r.status_code == 202

    async def ran() -> dict[str, Any] | None:
        view = await show(stack, sched["id"])
        return view if view["last_result"] else None

    assert (await until(ran, what="triggered run"))["last_result"] == "Hello, world!"


async def test_overlap_skip_skips_while_a_slow_run_is_going(stack: Stack) -> None:
    await stack.put_definition(SLOW)
    sched = await create(stack, definition_id="slow", every="1s", overlap="skip")

    async def skipped() -> dict[str, Any] | None:
        view = await show(stack, sched["id"])
        return view if view["skipped_overlap"] >= 2 else None

    view = await until(skipped, what="skipped firings")
    assert len(view["running"]) == 1
    assert len(view["recent_runs"]) == 1  # the slow run is the only one started
    await stack.http.post(f"/v1/schedules/{sched['id']}/pause", json={"note": "stop"})


async def test_pause_unpause_trigger_backfill(stack: Stack) -> None:
    await stack.put_definition(HELLO)
    sched = await create(stack, definition_id="hello", every="1h", id="hourly")
    sid = sched["id"]
    r = await stack.http.post(f"/v1/schedules/{sid}/pause", json={"note": "maintenance"})
    assert r.status_code == 200
    view = await show(stack, sid)
    assert view["paused"] and view["status"] == "paused" and view["note"] == "maintenance"
    r = await stack.http.post(f"/v1/schedules/{sid}/unpause")
    view = await show(stack, sid)
    assert not view["paused"] and view["status"] == "active"

    assert (await stack.http.post(f"/v1/schedules/{sid}/trigger")).status_code == 202

    async def runs(n: int) -> Callable[[], Awaitable[dict[str, Any] | None]]:
        async def check() -> dict[str, Any] | None:
            v = await show(stack, sid)
            return (
                v if len([x for x in v["recent_runs"] if x["status"] == "completed"]) >= n else None
            )

        return check

    await until(await runs(1), what="the triggered run")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    body = {"start_at": (now - timedelta(hours=3, minutes=30)).isoformat(),
            "end_at": (now - timedelta(minutes=30)).isoformat()}  # fmt: skip
    r = await stack.http.post(f"/v1/schedules/{sid}/backfill", json=body)
    assert r.status_code == 202, r.text
    view = await until(await runs(4), what="three backfilled runs")
    scheduled = {datetime.fromisoformat(x["scheduled_at"]) for x in view["recent_runs"]}
    assert {now - timedelta(hours=h) for h in (3, 2, 1)} <= scheduled
    assert view["recent_runs"][0]["run_id"].endswith(  # newest first
        (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    )

    # PATCH the spec: now it is a cron, described as such
    r = await stack.http.patch(f"/v1/schedules/{sid}", json={"cron": "0 9 * * *"})
    assert r.status_code == 200, r.text
    assert r.json()["human"] == "Daily at 9:00" and r.json()["spec"]["kind"] == "cron"
    r = await stack.http.patch(f"/v1/schedules/{sid}", json={"input": {"name": "patched"}})
    assert r.json()["input"] == {"name": "patched"} and r.json()["human"] == "Daily at 9:00"


async def test_failed_run_does_not_pause_unless_asked(stack: Stack) -> None:
    await stack.put_definition(FAILING)
    keeps = await create(stack, definition_id="failing", every="1s", id="keeps-going")
    stops = await create(stack, definition_id="failing", every="1s", id="stops",
                         pause_on_failure=True)  # fmt: skip

    async def failed(sid: str) -> dict[str, Any] | None:
        v = await show(stack, sid)
        return v if any(r["status"] == "failed" for r in v["recent_runs"]) else None

    view = await until(lambda: failed(stops["id"]), what="a failed run")
    assert "bad request" in (view["last_error"] or "")

    async def paused() -> bool:
        return bool((await show(stack, stops["id"]))["paused"])

    await until(paused, what="pause on failure")
    await until(lambda: failed(keeps["id"]), what="a failed run")

    async def two_failed() -> bool:
        v = await show(stack, keeps["id"])
        return len([r for r in v["recent_runs"] if r["status"] == "failed"]) >= 2

    await until(two_failed, what="a second firing after a failure")
    assert not (await show(stack, keeps["id"]))["paused"]
    await stack.http.delete(f"/v1/schedules/{keeps['id']}")


async def test_global_switch(stack: Stack) -> None:
    await stack.put_definition(HELLO)
    running = await create(stack, definition_id="hello", cron="0 9 * * *", id="running")
    mine = await create(stack, definition_id="hello", cron="0 9 * * *", id="user-paused")
    await stack.http.post(f"/v1/schedules/{mine['id']}/pause", json={"note": "mine"})

    r = await stack.http.put("/v1/scheduling", json={"enabled": False})
    assert r.status_code == 200 and r.json() == {"enabled": False, "paused": [running["id"]]}
    assert (await stack.http.get("/v1/scheduling")).json() == {"enabled": False}
    view = await show(stack, running["id"])
    assert view["paused"] and view["paused_by_switch"]
    assert (await show(stack, mine["id"]))["note"] == "mine"
    # created while off: created paused, resumed with the rest
    later = await create(stack, definition_id="hello", cron="0 9 * * *", id="later")
    assert later["paused"] and later["paused_by_switch"]
    for action in ("unpause", "trigger"):
        r = await stack.http.post(f"/v1/schedules/{mine['id']}/{action}")
        assert r.status_code == 409 and "disabled" in r.json()["detail"]

    r = await stack.http.put("/v1/scheduling", json={"enabled": True})
    assert sorted(r.json()["resumed"]) == sorted([running["id"], later["id"]])
    assert not (await show(stack, running["id"]))["paused"]
    assert not (await show(stack, later["id"]))["paused"]
    user = await show(stack, mine["id"])
    assert user["paused"] and user["note"] == "mine"


async def test_invalid_requests_say_what_is_wrong(stack: Stack) -> None:
    await stack.put_definition(HELLO)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"cron": "0 9 * *"}, 422, "expected 5 fields"),
        ({"cron": "70 9 * * *"}, 422, "invalid cron"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, 422, "unknown time zone"),
        ({"text": "when the moon is full"}, 422, "cannot understand schedule text"),
        ({"at": "2001-01-01T00:00:00Z"}, 422, "in the past"),
        ({"every": "often"}, 422, "invalid duration"),
        ({}, 422, "exactly one"),
        ({"cron": "0 9 * * *", "every": "1h"}, 422, "exactly one"),
        ({"cron": "0 9 * * *", "overlap": "sometimes"}, 422, "overlap"),
        ({"cron": "0 9 * * *", "input": {"name": 5}}, 422, "input"),
        ({"cron": "0 9 * * *", "definition_id": "nope"}, 404, "nope"),
    ]
    for extra, code, message in cases:
        r = await stack.http.post("/v1/schedules", json={"definition_id": "hello", **extra})
        assert r.status_code == code, (extra, r.text)
        assert message in r.json()["detail"], (extra, r.json())
    assert (await stack.http.get("/v1/schedules")).json()["items"] == []
    for method, path in [("GET", ""), ("DELETE", ""), ("POST", "/pause"), ("POST", "/trigger")]:
        r = await stack.http.request(method, f"/v1/schedules/sched-missing{path}")
        assert r.status_code == 404 and "sched-missing" in r.json()["detail"]
    sched = await create(stack, definition_id="hello", cron="0 9 * * *")
    r = await stack.http.patch(f"/v1/schedules/{sched['id']}", json={"cron": "bad"})
    assert r.status_code == 422 and "expected 5 fields" in r.json()["detail"]
