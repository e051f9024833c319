"""Budgets and input steps on the time-skipping server: an input that never comes times
out, a budget raise without the approve scope is refused by the run itself, and a run
parked at its budget still answers queries and goes on after a raise."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError

from tests.helpers import definition, make_worker, run_input, start
from workflows.models import BudgetRaise, InputSubmission, RunState
from workflows.run_workflow import TaskRunWorkflow


async def _until(handle: WorkflowHandle[Any, Any], status: str) -> RunState:
    for _ in range(300):
        state: RunState = await handle.query(TaskRunWorkflow.state)
        if state.status.value == status:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {status}")


async def test_input_that_never_comes_times_out(ts_client: Client, task_queue: str) -> None:
    defn = definition(
        [{"id": "ask", "action": "input", "schema": {"type": "string"}, "timeout": "2d"}]
    )
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(defn))
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "TIMEOUT"
    assert "no input for step 'ask' within 2d" in cause.message


async def test_budget_raise_needs_the_approve_scope(ts_client: Client, task_queue: str) -> None:
    defn = definition(
        [{"id": "one", "action": "llm_call", "prompt": "Hi there friend"},
         {"id": "two", "action": "input", "schema": {"type": "integer"}}],
        limits={"max_tokens": 3, "on_budget": "approve"},
    )  # fmt: skip
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(defn))
        state = await _until(handle, "awaiting_approval")
        assert state.budget is not None and state.budget.exceeded
        with pytest.raises(WorkflowUpdateFailedError, match="update failed"):
            await handle.execute_update(
                TaskRunWorkflow.raise_budget,
                BudgetRaise(max_tokens=100, by="wes", scopes=["tasks:write"]),
            )
        # an input submitted to a step that is not waiting is refused too
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                TaskRunWorkflow.submit_input, InputSubmission(step_id="two", value=1)
            )
        await handle.execute_update(
            TaskRunWorkflow.raise_budget,
            BudgetRaise(max_tokens=100, by="ann", scopes=["tasks:approve"]),
        )
        await _until(handle, "awaiting_input")
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(
                TaskRunWorkflow.submit_input, InputSubmission(step_id="two", value="x")
            )
        cause = info.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "INVALID_INPUT"
        await handle.execute_update(
            TaskRunWorkflow.submit_input, InputSubmission(step_id="two", value=4, by="wes")
        )
        result: RunState = await handle.result()
    assert result.result == 4
    assert result.budget is not None and result.budget.raises[0]["by"] == "ann"
