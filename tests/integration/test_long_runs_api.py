"""A run that continued as new is one row in the run list, with its live status."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from temporalio.testing import WorkflowEnvironment

from tests.stack import run_stack

STEPS = {
    "id": "long",
    "steps": [{"id": f"s{i}", "action": "llm_call", "prompt": f"p{i}"} for i in range(3)],
}


async def test_continued_run_is_one_row(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    # every step after the first of an execution starts a new one
    async with run_stack(
        dev_env, task_queue, tmp_path, run_continue_as_new_history_events=1
    ) as stack:
        await stack.put_definition(STEPS)
        run = await stack.start("long")
        result = await stack.wait_result(run["run_id"])
        assert result["done"] is True
        st = (await stack.http.get(f"/v1/runs/{run['run_id']}")).json()
        assert st["continued_as_new"] == 2 and st["status"] == "completed"

        async def rows(**params: Any) -> list[dict[str, Any]]:
            r = await stack.http.get("/v1/runs", params={"definition_id": "long", **params})
            assert r.status_code == 200, r.text
            return [x for x in r.json()["items"] if x["run_id"] == run["run_id"]]

        # visibility is eventually consistent: wait for the closed row to show
        for _ in range(100):
            found = await rows()
            if found and found[0]["status"] == "completed":
                break
            await asyncio.sleep(0.2)
        assert [x["status"] for x in found] == ["completed"]
        assert await rows(status="running") == []
        assert await rows(status="failed") == []
