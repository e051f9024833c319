"""Definition health on a Temporal Schedule, its verdict stored, alerting once per
transition even across gateway restarts; on a real dev server, SQLite and HTTP."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from duratask.health_schedule import ensure_health_schedule, schedule_id
from duratask.store.db import create_engine, migrate
from duratask.store.health import VerdictStore
from tests.helpers import eventually
from tests.integration.test_insights import BOOM, webhook_receiver
from tests.stack import run_stack


async def test_verdict_store_reports_each_transition_once(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'v.db'}")
    await migrate(engine)
    store = VerdictStore(engine)
    first = await store.record("d", "regression", "{}")
    assert first is not None and first.previous is None and first.verdict == "regression"
    assert await store.record("d", "regression", "{}") is None
    restarted = VerdictStore(engine)  # another process, or the same after a restart
    assert await restarted.record("d", "regression", "{}") is None
    healthy = await restarted.record("d", "healthy", '{"x": 1}')
    assert healthy is not None and healthy.previous == "regression"
    stored = await store.get("d")
    assert stored is not None and stored.verdict == "healthy" and stored.report == '{"x": 1}'
    await engine.dispose()


async def test_scheduled_check_stores_the_verdict_and_alerts_once(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    did = f"flaky-{uuid.uuid4().hex[:6]}"
    failing = {
        "id": did,
        "steps": [{"id": "boom", "action": "llm_call", "prompt": "x", "model": BOOM}],
        "regression": {"consecutive_failures": 2},
    }
    db = tmp_path / "shared.db"
    async with webhook_receiver() as (url, received):
        kw: dict[str, Any] = {"notify_webhook_url": url, "health_check_every": "1h",
                              "database_url": f"sqlite+aiosqlite:///{db}"}  # fmt: skip
        async with run_stack(dev_env, task_queue, tmp_path / "a", **kw) as stack:
            await stack.put_definition(failing)
            for _ in range(2):
                run = await stack.start(did)
                assert (await stack.wait_result(run["run_id"]))["status"] == "failed"
            sid = await ensure_health_schedule(stack.client, stack.settings)
            assert sid == schedule_id(stack.settings)
            handle = stack.client.get_schedule_handle(sid)
            desc = await handle.describe()
            assert desc.schedule.spec.intervals[0].every.total_seconds() == 3600
            verdicts = VerdictStore(create_engine(f"sqlite+aiosqlite:///{db}"))

            async def fired(n: int) -> Any:
                d = await handle.describe()
                done = [a for a in d.info.recent_actions]
                return done if len(done) >= n else None

            async def checked_regression() -> Any:
                v = await verdicts.get(did)
                return v if v is not None and v.verdict == "regression" else None

            await handle.trigger()  # the schedule starts the check workflow
            await eventually(lambda: fired(1))
            await eventually(checked_regression)
            await eventually(lambda: _alerts(received, did, 1))
            # the next firing finds the same verdict: no second alert
            await _wait_closed(stack, sid, 1)
            await handle.trigger()
            await eventually(lambda: fired(2))
            await _wait_closed(stack, sid, 2)
            assert len([m for m in received if m["data"]["definition_id"] == did]) == 1
            # the gateway's own read agrees and does not alert again either
            r = await stack.http.get(f"/v1/definitions/{did}/health")
            assert r.json()["status"] == "regression"
        # a restarted gateway on the same store: still no second alert
        async with run_stack(dev_env, task_queue, tmp_path / "b", **kw) as again:
            r = await again.http.get(f"/v1/definitions/{did}/health")
            assert r.status_code == 200 and r.json()["status"] == "regression"
            await asyncio.sleep(0.3)
            assert len([m for m in received if m["data"]["definition_id"] == did]) == 1
            await again.client.get_schedule_handle(sid).delete()


async def _alerts(received: list[dict[str, Any]], did: str, n: int) -> Any:
    mine = [m for m in received if m["data"]["definition_id"] == did]
    return mine if len(mine) >= n else None


async def _wait_closed(stack: Any, sid: str, n: int) -> None:
    """Until the schedule's n-th check workflow has ended."""

    async def ended() -> Any:
        found = [w async for w in stack.client.list_workflows(
            f"WorkflowType = 'DurataskHealthCheck' AND ExecutionStatus != 'Running' "
            f"AND WorkflowId STARTS_WITH '{sid}'")]  # fmt: skip
        return found if len(found) >= n else None

    await eventually(ended)
