"""Budgets and input steps on the time-skipping server: an input that never comes times
out, a budget raise without the gateway's proof is refused by the run itself (whatever
scopes it claims), and a run parked at its budget still answers queries and goes on
after a raise."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError

from tests.helpers import APPROVAL_KEY, definition, make_worker, run_input, start
from workflows import contracts, proofs
from workflows.models import BudgetRaise, InputSubmission, RunState
from workflows.run_workflow import TaskRunWorkflow


async def _until(handle: WorkflowHandle[Any, Any], status: str) -> RunState:
    for _ in range(300):
        state: RunState = await handle.query(TaskRunWorkflow.state)
        if state.status.value == status:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"never {status}")


def signed_raise(
    run_id: str, at: datetime, key: str = APPROVAL_KEY, nonce: str | None = None, **kw: Any
) -> BudgetRaise:
    """A raise with a proof, as the gateway makes it, issued at the run's clock `at`."""
    return proofs.sign_raise(
        key.encode(), run_id, BudgetRaise(**kw), nonce=nonce or uuid.uuid4().hex, issued_at=at
    )


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


async def test_budget_raise_needs_the_gateways_proof(ts_client: Client, task_queue: str) -> None:
    defn = definition(
        [{"id": "one", "action": "llm_call", "prompt": "Hi there friend"},
         {"id": "two", "action": "input", "schema": {"type": "integer"}}],
        limits={"max_tokens": 3, "on_budget": "approve"},
    )  # fmt: skip
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(defn))
        state = await _until(handle, "awaiting_approval")
        assert state.budget is not None and state.budget.exceeded
        clock = state.events[-1].time  # the run's clock (time skips ahead of the wall's)
        # a raw update claiming the approve scope, without a proof: refused
        forged = [
            BudgetRaise(max_tokens=100, by="ann", scopes=["tasks:approve", "tasks:admin"]),
            signed_raise(handle.id, clock, key="not-the-key", max_tokens=100, by="ann"),
            # a proof for another run, and one whose limit was changed after signing
            signed_raise("run-other", clock, max_tokens=100, by="ann"),
            signed_raise(handle.id, clock, max_tokens=100, by="ann").model_copy(
                update={"max_tokens": 10_000}
            ),
        ]
        for raw in forged:
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(TaskRunWorkflow.raise_budget, raw)
            cause = refused.value.cause
            assert isinstance(cause, ApplicationError)
            assert cause.type == contracts.E_APPROVAL_FORBIDDEN, cause.message
        state = await handle.query(TaskRunWorkflow.state)
        assert state.status == "awaiting_approval" and state.budget is not None
        assert state.budget.raises == [] and state.budget.max_tokens == 3
        # an input submitted to a step that is not waiting is refused too
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                TaskRunWorkflow.submit_input, InputSubmission(step_id="two", value=1)
            )
        good = signed_raise(handle.id, clock, max_tokens=100, by="ann")
        await handle.execute_update(TaskRunWorkflow.raise_budget, good)
        # the same signed raise again: its nonce was used
        with pytest.raises(WorkflowUpdateFailedError) as again:
            await handle.execute_update(TaskRunWorkflow.raise_budget, good)
        assert isinstance(again.value.cause, ApplicationError)
        assert "already used" in again.value.cause.message
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
