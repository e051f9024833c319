"""Approval steps on the time-skipping server: deciding, counting, refusing, timing out.

Decisions are sent with a proof signed with the test key, as the gateway signs them,
by the `approve` signal and the `decide` update; time skips only while a test awaits a result.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from tests.helpers import APPROVAL_KEY, definition, make_worker, run_input, start
from workflows import contracts, proofs
from workflows.approvals import is_allowed
from workflows.models import (
    ApprovalDecision,
    ApprovalOutcome,
    NotifyRequest,
    NotifyResult,
    RunState,
)
from workflows.run_workflow import TaskRunWorkflow

LEAD = "lead@example.com"
# Recorded from test_two_approvals_needed_duplicate_counts_once with
# DURATASK_RECORD_HISTORIES=1; replayed so later changes stay deterministic.
HISTORY = Path(__file__).parent.parent / "histories" / "approval_votes.json"


def replayer() -> Replayer:
    return Replayer(workflows=[TaskRunWorkflow], data_converter=pydantic_data_converter)


def approval_def(**step: Any) -> Any:
    return definition(
        [
            {"id": "draft", "action": "llm_call", "prompt": "Release notes for {{ input.v }}"},
            {
                "id": "review",
                "action": "approval",
                "approvers": [LEAD, "group:release"],
                "prompt": "Ship this? {{ steps.draft.output }}",
                **step,
            },
            {"id": "ship", "action": "llm_call", "prompt": "shipped {{ input.v }}"},
        ],
        inputs={"v": {"type": "string", "default": "1.0"}},
    )


async def wait_parked(handle: WorkflowHandle[Any, Any]) -> RunState:
    for _ in range(300):
        try:
            state: RunState = await handle.query(TaskRunWorkflow.state)
        except Exception:
            state = None  # type: ignore[assignment]
        if state is not None and state.status == "awaiting_approval":
            return state
        await asyncio.sleep(0.1)
    raise AssertionError("the run never reached awaiting_approval")


async def signed(
    handle: WorkflowHandle[Any, Any], decision: str, approver: str, key: str = APPROVAL_KEY,
    **kw: Any,
) -> ApprovalDecision:  # fmt: skip
    """A decision with a proof, as the gateway makes it (`duratask.approvals`), issued at
    the run's own clock (the time-skipping server's clock runs ahead of the wall clock)."""
    plain = ApprovalDecision.model_validate({"decision": decision, "approver": approver, **kw})
    return proofs.sign(
        key.encode(), handle.id, plain, step_id="", nonce=uuid.uuid4().hex,
        issued_at=await run_clock(handle),
    )  # fmt: skip


async def run_clock(handle: WorkflowHandle[Any, Any]) -> datetime:
    state: RunState = await handle.query(TaskRunWorkflow.state)
    waiting = state.pending_approvals
    return datetime.fromisoformat(waiting[0]["requested_at"]) if waiting else datetime.now(UTC)


async def decide(handle: WorkflowHandle[Any, Any], decision: str, approver: str, **kw: Any) -> None:
    """The `approve` signal with a valid proof (the path old clients take)."""
    await handle.signal(TaskRunWorkflow.approve, await signed(handle, decision, approver, **kw))


async def failure_state(handle: WorkflowHandle[Any, Any]) -> tuple[str, RunState]:
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.type or "", RunState.model_validate(cause.details[0])


def events(state: RunState, type: str) -> list[Any]:
    return [e for e in state.events if e.type == type]


def test_matching_rule() -> None:
    approvers = [LEAD, "group:Release"]
    assert is_allowed(approvers, "Lead@Example.com")
    assert is_allowed(approvers, "bob", ["release"])
    assert not is_allowed(approvers, "bob", ["qa"])
    assert not is_allowed(approvers, "release")  # a group is not an identity
    assert not is_allowed(approvers, "  ")


async def test_approve_continues_with_decision_in_output(
    ts_client: Client, task_queue: str
) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(approval_def(), {"v": "2.1"}))
        parked = await wait_parked(handle)
        pending = parked.pending_approvals[0]
        assert pending["step_id"] == "review"
        assert pending["prompt"] == "Ship this? Release notes for 2.1"
        assert pending["approvers"] == [LEAD, "group:release"]
        desc = await handle.describe()
        assert desc.typed_search_attributes.get(contracts.SA_APPROVERS) == [
            "group:release",
            LEAD,
        ]
        assert desc.typed_search_attributes.get(contracts.SA_STATUS) == "awaiting_approval"
        await decide(handle, "approve", LEAD, comment="looks good")
        state: RunState = await handle.result()
    assert state.status == "completed"
    out = state.step("review").output
    assert out["decision"] == "approve" and out["approver"] == LEAD
    assert out["comment"] == "looks good" and out["decided_at"] and not out["timed_out"]
    assert state.step("ship").status == "completed"
    assert state.pending_approvals == []
    assert [e.type for e in state.events if e.type.startswith(("approval.", "run.awaiting"))] == [
        "run.awaiting_approval",
        "approval.vote",
        "approval.decided",
    ]
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(contracts.SA_APPROVERS) is None
    assert desc.typed_search_attributes.get(contracts.SA_STATUS) == "completed"


async def test_reject_fails_the_step_with_rejected(ts_client: Client, task_queue: str) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(approval_def()))
        await wait_parked(handle)
        await decide(handle, "reject", "carol", groups=["release"], comment="not yet")
        code, state = await failure_state(handle)
    assert code == contracts.E_REJECTED
    assert state.status == "failed"
    review = state.step("review")
    assert review.status == "failed" and review.error and review.error.code == "REJECTED"
    assert "carol" in review.error.message and "not yet" in review.error.message
    assert review.output["decision"] == "reject" and review.output["approver"] == "carol"
    assert state.step("ship").status in ("pending", "skipped")
    decided = events(state, "approval.decided")[0]
    assert decided.data["decision"] == "reject" and decided.data["comment"] == "not yet"


async def test_reject_follows_on_reject(ts_client: Client, task_queue: str) -> None:
    defn = definition(
        [
            {"id": "review", "action": "approval", "approvers": [LEAD], "on_reject": "undo"},
            {"id": "ship", "action": "llm_call", "prompt": "ship", "next": "end"},
            {
                "id": "undo",
                "action": "llm_call",
                "prompt": "undo: {{ steps.review.output.comment }}",
            },
        ]
    )
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(defn))
        await wait_parked(handle)
        await decide(handle, "reject", LEAD, comment="bad idea")
        state: RunState = await handle.result()
    assert state.status == "completed"
    assert state.result == "undo: bad idea"
    assert state.step("ship").status == "skipped"


async def test_two_approvals_needed_duplicate_counts_once(
    ts_client: Client, task_queue: str
) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(approval_def(min_approvals=2)))
        await wait_parked(handle)
        await decide(handle, "approve", LEAD, comment="first")
        await decide(handle, "approve", "LEAD@example.com", comment="again")
        state = await wait_parked(handle)
        for _ in range(600):  # signals are processed in order; wait for both to land
            if events(state, "approval.duplicate"):
                break
            await asyncio.sleep(0.1)
            state = await handle.query(TaskRunWorkflow.state)
        assert state.status == "awaiting_approval"
        assert len(state.pending_approvals[0]["votes"]) == 1
        assert events(state, "approval.duplicate")[0].data["approver"] == "LEAD@example.com"
        await decide(handle, "approve", "mallory")  # refused
        await decide(handle, "approve", "dave", groups=["release"])
        state = await handle.result()
        history = await handle.fetch_history()
    await replayer().replay_workflow(history)  # the fresh history replays deterministically
    if os.environ.get("DURATASK_RECORD_HISTORIES"):
        HISTORY.parent.mkdir(exist_ok=True)
        HISTORY.write_text(history.to_json())
    assert [e.data["approver"] for e in events(state, "approval.refused")] == ["mallory"]
    out = state.step("review").output
    assert out["approvals"] == 2
    assert [v["approver"] for v in out["votes"]] == [LEAD, "dave"]
    assert out["comment"] is None and out["approver"] == "dave"


async def test_non_approver_is_refused_and_recorded(ts_client: Client, task_queue: str) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(approval_def()))
        await wait_parked(handle)
        await decide(handle, "approve", "mallory@example.com", groups=["qa"])
        for _ in range(600):
            state: RunState = await handle.query(TaskRunWorkflow.state)
            if events(state, "approval.refused"):
                break
            await asyncio.sleep(0.1)
        assert state.status == "awaiting_approval"
        refused = events(state, "approval.refused")[0]
        assert refused.data["approver"] == "mallory@example.com"
        assert refused.data["time"] and refused.step_id == "review"
        await decide(handle, "approve", LEAD)
        state = await handle.result()
    assert state.status == "completed"
    assert state.step("review").output["votes"] == [
        {
            "approver": LEAD,
            "decision": "approve",
            "comment": None,
            "time": state.step("review").output["votes"][0]["time"],
        }
    ]


async def test_timeout_rejects_after_24h(ts_client: Client, task_queue: str) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(approval_def(timeout="24h")))
        code, state = await failure_state(handle)
    assert code == contracts.E_REJECTED
    review = state.step("review")
    assert review.output["timed_out"] is True and review.output["decision"] == "reject"
    assert review.started_at and review.completed_at
    assert (review.completed_at - review.started_at).total_seconds() >= 24 * 3600
    decided = events(state, "approval.decided")[0]
    assert decided.data["timed_out"] is True and "timed out after 24h" in (decided.message or "")


async def test_timeout_can_approve_or_fail(ts_client: Client, task_queue: str) -> None:
    async with make_worker(ts_client, task_queue):
        approve = await start(
            ts_client, task_queue, run_input(approval_def(timeout="2h", on_timeout="approve"))
        )
        state: RunState = await approve.result()
        assert state.status == "completed"
        assert state.step("review").output["timed_out"] is True
        failing = await start(
            ts_client, task_queue, run_input(approval_def(timeout="2h", on_timeout="fail"))
        )
        code, _ = await failure_state(failing)
    assert code == contracts.E_TIMEOUT


async def test_reminders_fire_and_notify(ts_client: Client, task_queue: str) -> None:
    sent: list[NotifyRequest] = []

    @activity.defn(name=contracts.NOTIFY_ACTIVITY)
    async def notify(req: NotifyRequest) -> NotifyResult:
        sent.append(req)
        return NotifyResult(delivered=["test"])

    defn = definition(
        [
            {
                "id": "review",
                "action": "approval",
                "approvers": [LEAD],
                "prompt": "Ship this?",
                "timeout": "3h",
                "reminder": "1h",
                "on_timeout": "approve",
            }
        ]
    )
    async with make_worker(ts_client, task_queue, activities=[notify]):
        handle = await start(ts_client, task_queue, run_input(defn))
        state: RunState = await handle.result()
    reminders = events(state, "approval.reminder")
    assert [e.data["reminder"] for e in reminders] == [1, 2]
    assert [r.data["kind"] for r in sent] == [
        "approval_requested",
        "approval_reminder",
        "approval_reminder",
    ]
    assert len({r.idempotency_key for r in sent}) == 3
    assert "Ship this?" in sent[1].message


async def test_saved_approval_history_replays() -> None:
    history = WorkflowHistory.from_json("run-approval-votes", HISTORY.read_text())
    await replayer().replay_workflow(history)


async def test_cancel_while_parked_clears_the_approval(ts_client: Client, task_queue: str) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(approval_def()))
        await wait_parked(handle)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state: RunState = await handle.query(TaskRunWorkflow.state)
    assert state.status == "cancelled" and state.pending_approvals == []
    assert state.step("review").status == "cancelled"
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(contracts.SA_APPROVERS) is None
    assert desc.typed_search_attributes.get(contracts.SA_STATUS) == "cancelled"


async def test_no_timeout_set_means_24h_then_reject(ts_client: Client, task_queue: str) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(approval_def()))
        code, state = await failure_state(handle)
    assert code == contracts.E_REJECTED
    review = state.step("review")
    assert review.started_at and review.completed_at
    assert (review.completed_at - review.started_at).total_seconds() == pytest.approx(86400, abs=5)
    assert "24h (the default timeout)" in (review.error.message if review.error else "")


# ------------------------------------------------------------ proofs (issue 13, item 2)
async def refused_reasons(handle: WorkflowHandle[Any, Any], n: int) -> list[str]:
    for _ in range(600):
        state: RunState = await handle.query(TaskRunWorkflow.state)
        refused = events(state, "approval.refused")
        if len(refused) >= n:
            return [e.message for e in refused]
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {n} refusals, got {events(state, 'approval.refused')}")


async def test_a_signal_naming_an_approver_without_a_proof_is_refused(
    ts_client: Client, task_queue: str
) -> None:
    """The finding: a raw signal stating `approver` and `groups` approved a run."""
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(approval_def()))
        await wait_parked(handle)
        forged = {"decision": "approve", "approver": "mallory@evil", "groups": ["release"]}
        await handle.signal(TaskRunWorkflow.approve, ApprovalDecision.model_validate(forged))
        as_lead = ApprovalDecision(decision="approve", approver=LEAD)  # a real approver's name
        await handle.signal(TaskRunWorkflow.approve, as_lead)
        wrong_key = await signed(handle, "approve", LEAD, key="not-the-key")
        await handle.signal(TaskRunWorkflow.approve, wrong_key)
        altered = await signed(handle, "approve", "mallory@evil", groups=["qa"])
        altered = altered.model_copy(update={"groups": ["release"]})  # groups edited after signing
        await handle.signal(TaskRunWorkflow.approve, altered)
        reasons = await refused_reasons(handle, 4)
        assert "no proof" in reasons[0] and "no proof" in reasons[1], reasons
        assert "does not match" in reasons[2] and "does not match" in reasons[3], reasons
        state: RunState = await handle.query(TaskRunWorkflow.state)
        assert state.status == "awaiting_approval"
        assert state.pending_approvals[0]["votes"] == []
        await decide(handle, "approve", "dave", groups=["release"])  # signed: counts
        state = await handle.result()
    assert state.status == "completed"
    assert state.step("review").output["approver"] == "dave"


async def test_decide_update_answers_with_the_workflows_verdict(
    ts_client: Client, task_queue: str
) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(approval_def(min_approvals=2)))
        await wait_parked(handle)

        async def refused(decision: ApprovalDecision) -> ApplicationError:
            with pytest.raises(WorkflowUpdateFailedError) as info:
                await handle.execute_update(TaskRunWorkflow.decide, decision)
            cause = info.value.cause
            assert isinstance(cause, ApplicationError)
            return cause

        no_proof = await refused(ApprovalDecision(decision="approve", approver=LEAD))
        assert no_proof.type == contracts.E_APPROVAL_FORBIDDEN and "no proof" in no_proof.message
        stranger = await refused(await signed(handle, "approve", "mallory"))
        assert stranger.type == contracts.E_APPROVAL_FORBIDDEN and "not an approver" in str(
            stranger
        )
        other_step = await signed(handle, "approve", LEAD)
        other_step = proofs.sign(
            APPROVAL_KEY.encode(), handle.id, other_step, step_id="deploy", nonce="n1",
            issued_at=await run_clock(handle),
        )  # fmt: skip
        assert "step 'deploy'" in (await refused(other_step)).message

        out = await handle.execute_update(
            TaskRunWorkflow.decide, await signed(handle, "approve", LEAD, comment="one")
        )
        assert isinstance(out, ApprovalOutcome)
        assert (out.step_id, out.approver, out.approvals, out.done) == ("review", LEAD, 1, False)
        again = await refused(await signed(handle, "approve", LEAD.upper()))
        assert again.type == contracts.E_APPROVAL_CONFLICT and "already decided" in again.message
        proof_used = await signed(handle, "approve", "dave", groups=["release"])
        out = await handle.execute_update(TaskRunWorkflow.decide, proof_used)
        assert out.done and out.approvals == 2
        late = await refused(await signed(handle, "reject", "erin", groups=["release"]))
        assert late.type == contracts.E_APPROVAL_CONFLICT
        state = await handle.result()
    assert state.status == "completed"
    # refused updates never reach history; only the counted votes do
    assert [v["approver"] for v in state.step("review").output["votes"]] == [LEAD, "dave"]
    assert not events(state, "approval.refused")


async def test_a_proof_is_not_accepted_twice_nor_once_expired(
    ts_client: Client, task_queue: str
) -> None:
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(approval_def(min_approvals=2)))
        await wait_parked(handle)
        old = proofs.sign(
            APPROVAL_KEY.encode(), handle.id, ApprovalDecision(decision="approve", approver=LEAD),
            step_id="", nonce="n-old", issued_at=await run_clock(handle) - proofs.MAX_AGE * 2,
        )  # fmt: skip
        with pytest.raises(WorkflowUpdateFailedError) as info:
            await handle.execute_update(TaskRunWorkflow.decide, old)
        assert "before this approval was requested" in str(info.value.cause) or "expired" in str(
            info.value.cause
        )
        first = await signed(handle, "approve", LEAD)
        await handle.execute_update(TaskRunWorkflow.decide, first)
        await handle.cancel()


PROOFS_HISTORY = HISTORY.parent / "approval_proofs.json"


async def test_proof_paths_replay(ts_client: Client, task_queue: str) -> None:
    """A refused raw signal, a counted update, a refused update and a signed signal:
    the history replays (with the key installed, as on a worker); saved for test_replay."""
    async with make_worker(ts_client, task_queue):
        handle = await start(
            ts_client, task_queue, run_input(approval_def(min_approvals=2)),
            id="run-approval_proofs",
        )  # fmt: skip
        await wait_parked(handle)
        raw = ApprovalDecision(decision="approve", approver="mallory", groups=["release"])
        await handle.signal(TaskRunWorkflow.approve, raw)
        await refused_reasons(handle, 1)
        await handle.execute_update(
            TaskRunWorkflow.decide, await signed(handle, "approve", LEAD, comment="update")
        )
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                TaskRunWorkflow.decide, await signed(handle, "approve", "x")
            )
        await decide(handle, "approve", "dave", groups=["release"])
        state = await handle.result()
        history = await handle.fetch_history()
    assert state.status == "completed"
    await replayer().replay_workflow(history)
    if os.environ.get("DURATASK_RECORD_HISTORIES"):
        PROOFS_HISTORY.write_text(history.to_json())
