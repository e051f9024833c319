"""Approvals with an edit on the time-skipping server: the approver's output replaces the
gated step's for the steps after it, only with a valid proof that covers the edit, and
only an edit the run can take (docs/approvals.md#approving-with-an-edit)."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from tests.helpers import definition, make_worker, run_input, start
from tests.workflow.test_approvals import LEAD, events, signed, wait_parked
from workflows import contracts
from workflows.models import ApprovalDecision, InputSubmission, RunState
from workflows.run_workflow import TaskRunWorkflow


def edit_def(gated: dict[str, Any] | None = None, **review: Any) -> Any:
    """draft (echo model) -> review (approval) -> ship, whose prompt shows draft's output."""
    return definition(
        [
            gated or {"id": "draft", "action": "llm_call", "prompt": "Notes for {{ input.v }}"},
            {"id": "review", "action": "approval", "approvers": [LEAD], **review},
            {"id": "ship", "action": "llm_call", "prompt": "Ship: {{ steps.draft.output }}"},
        ],
        inputs={"v": {"type": "string", "default": "1.0"}},
    )


async def refused(handle: WorkflowHandle[Any, Any], decision: ApprovalDecision) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(TaskRunWorkflow.decide, decision)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_an_edit_replaces_the_output_the_next_step_sees(
    ts_client: Client, task_queue: str
) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(edit_def()))
        parked = await wait_parked(handle)
        assert parked.pending_approvals[0]["edits"] == "draft"
        d = await signed(handle, "approve", LEAD, comment="fixed", output="Corrected notes")
        outcome = await handle.execute_update(TaskRunWorkflow.decide, d)
        assert outcome.edited and outcome.done
        state: RunState = await handle.result()
    assert state.status == "completed"
    assert state.step("ship").output == "Ship: Corrected notes"
    draft = state.step("draft")
    assert draft.output == "Corrected notes"
    assert draft.edited_by == LEAD and draft.original_output == "Notes for 1.0"
    review = state.step("review").output
    assert review["edited_step"] == "draft" and review["votes"][0]["edited"] is True
    decided = events(state, "approval.decided")[0]
    assert decided.data["edited"] is True and decided.data["edited_step"] == "draft"
    assert "(output of 'draft' edited)" in (decided.message or "")


async def test_an_approval_without_an_edit_is_marked_unedited(
    ts_client: Client, task_queue: str
) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(edit_def()))
        await wait_parked(handle)
        outcome = await handle.execute_update(
            TaskRunWorkflow.decide, await signed(handle, "approve", LEAD)
        )
        assert not outcome.edited
        state: RunState = await handle.result()
    assert state.step("ship").output == "Ship: Notes for 1.0"
    assert state.step("draft").edited_by is None
    assert events(state, "approval.decided")[0].data["edited"] is False


async def test_an_edit_without_a_valid_proof_is_not_counted(
    ts_client: Client, task_queue: str
) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(edit_def()))
        await wait_parked(handle)
        raw = ApprovalDecision(decision="approve", approver=LEAD, output="Forged notes")
        # a raw update: refused before it reaches history
        cause = await refused(handle, raw)
        assert cause.type == contracts.E_APPROVAL_FORBIDDEN and "no proof" in cause.message
        # an edit added to (or changed in) a decision signed without it: the proof no
        # longer matches
        plain = await signed(handle, "approve", LEAD)
        cause = await refused(handle, plain.model_copy(update={"output": "Forged notes"}))
        assert cause.type == contracts.E_APPROVAL_FORBIDDEN and "does not match" in cause.message
        other = await signed(handle, "approve", LEAD, output="What I approved")
        cause = await refused(handle, other.model_copy(update={"output": "Forged notes"}))
        assert "does not match" in cause.message
        # the same by the old clients' signal: recorded as refused, not counted
        await handle.signal(TaskRunWorkflow.approve, raw)
        state = await wait_parked(handle)
        assert state.pending_approvals[0]["votes"] == []
        # the run still waits; an approval without an edit lets it go on unchanged
        await handle.execute_update(TaskRunWorkflow.decide, await signed(handle, "approve", LEAD))
        state = await handle.result()
    assert state.step("ship").output == "Ship: Notes for 1.0"
    assert state.step("draft").output == "Notes for 1.0" and state.step("draft").edited_by is None
    refusals = events(state, "approval.refused")
    assert len(refusals) == 1 and "no proof" in (refusals[0].message or "")


async def test_edits_the_run_cannot_take_are_refused_naming_the_problem(
    ts_client: Client, task_queue: str
) -> None:
    ask = {"id": "draft", "action": "input", "schema": {
        "type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}}  # fmt: skip
    bad = contracts.E_APPROVAL_INVALID
    cases: list[tuple[Any, dict[str, Any], str, str, list[str]]] = [
        # (definition, decision fields, error type, message part, problem fields)
        (edit_def(), {"output": {"not": "text"}}, bad, "is not of type 'string'",
         ["output"]),
        (edit_def(), {"output": "x" * 70_000}, bad, "at most 65536", ["output"]),
        (edit_def(edits=False), {"output": "new"}, bad, "allows no edits", ["output"]),
        (edit_def(min_approvals=2), {"output": "new"}, bad, "min_approvals 1", ["output"]),
        (edit_def(ask), {"output": {"amount": "ten"}}, bad, "'ten' is not of type",
         ["output.amount"]),
        (edit_def(ask), {"output": {}}, bad, "'amount' is required", ["output.amount"]),
    ]  # fmt: skip
    async with make_worker(ts_client, task_queue):
        for defn, fields, kind, part, where in cases:
            inp = run_input(defn)
            handle = await start(ts_client, task_queue, inp)
            if defn.steps[0].action == "input":
                await handle.execute_update(
                    TaskRunWorkflow.submit_input,
                    InputSubmission(step_id="draft", value={"amount": 5}, by="wes"),
                )
            await wait_parked(handle)
            cause = await refused(handle, await signed(handle, "approve", LEAD, **fields))
            assert cause.type == kind
            assert part in cause.message, (fields, cause.message)
            problems = cause.details[0]["problems"]
            assert [p["field"] for p in problems] == where
            await handle.cancel()
        # a rejection cannot carry an edit
        handle = await start(ts_client, task_queue, run_input(edit_def()))
        await wait_parked(handle)
        cause = await refused(handle, await signed(handle, "reject", LEAD, output="new"))
        assert "only an approval" in cause.message
        # an input step's output edited within its schema: the next step sees it
        await handle.cancel()
        inp = run_input(edit_def(ask))
        handle = await start(ts_client, task_queue, inp)
        await handle.execute_update(
            TaskRunWorkflow.submit_input,
            InputSubmission(step_id="draft", value={"amount": 5}, by="wes"),
        )
        await wait_parked(handle)
        d = await signed(handle, "approve", LEAD, output={"amount": 7})
        await handle.execute_update(TaskRunWorkflow.decide, d)
        state: RunState = await handle.result()
    assert state.step("ship").output == 'Ship: {"amount": 7}'
    assert state.step("draft").original_output == {"amount": 5}
