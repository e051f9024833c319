"""What the gateway adds per run (bench/__main__.py measures it): the result of a run
this gateway started is waited for without a describe first, and the shortcut keeps
the answers and the access rules of the describe path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from api import runs_service
from api.runs_service import RunService
from duratask.settings import Settings
from tests.stack import Stack
from worker.main import build_worker

ONE = {"id": "one-step", "steps": [{"id": "say", "action": "llm_call", "prompt": "hi"}]}
PARKED = {"id": "napping", "steps": [{"id": "nap", "action": "wait", "duration": "1h"}]}


@pytest.fixture
def described(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = RunService._describe

    async def counting(self: RunService, run_id: str) -> Any:
        calls.append(run_id)
        return await real(self, run_id)

    monkeypatch.setattr(RunService, "_describe", counting)
    return calls


async def test_result_of_a_run_started_here_needs_no_describe(
    stack: Stack, described: list[str]
) -> None:
    await stack.put_definition(ONE)
    run_id = (await stack.start("one-step"))["run_id"]
    first = await stack.wait_result(run_id)
    assert first["status"] == "completed" and first["done"], first
    assert described == []
    # another gateway process has not seen the run: it describes it first, same answer
    runs_service._KNOWN.pop(run_id)
    again = await stack.wait_result(run_id)
    assert described and set(described) == {run_id}
    assert again["result"] == first["result"] and again["status"] == "completed"


async def test_the_shortcut_still_reports_a_cancelled_run(stack: Stack) -> None:
    await stack.put_definition(PARKED)
    run_id = (await stack.start("napping"))["run_id"]
    r = await stack.http.post(f"/v1/runs/{run_id}/cancel", json={"reason": "enough"})
    assert r.status_code == 202, r.text
    result = await stack.wait_result(run_id, wait=30)
    assert result["status"] == "cancelled" and result["done"], result


async def test_the_sticky_cache_size_reaches_the_worker(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/w.db"
    settings = Settings(_env_file=None, max_cached_workflows=250, database_url=url)  # type: ignore[call-arg]
    worker = build_worker(dev_env.client, settings, "sized", activities=[], services={})
    assert worker.config()["max_cached_workflows"] == 250
    assert Settings(_env_file=None).max_cached_workflows == 1000  # type: ignore[call-arg]
