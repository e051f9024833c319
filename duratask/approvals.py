"""Deciding an approval: the one function every front end calls (gateway, console, MCP).

Why one function: a decision counts only with a proof the workflow can check (an
HMAC over run, step, decision, identity, groups, comment, nonce, time and the digest
of an edited output; see `workflows/proofs.py`), and only this code holds the signing
key. The caller passes
an already authenticated principal; the decision goes to the run as the `decide`
Workflow Update, whose validator checks proof, approver list and state, so the
answer is the workflow's own: counted, forbidden, or conflict. There is no
pre-check here that could race with the run. The caller needs `tasks:approve`
(checked here too, so no front end can forget it).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from temporalio.client import (
    Client,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from duratask.logging import get_logger
from duratask.settings import Settings
from workflows import contracts, proofs
from workflows.models import ApprovalDecision, ApprovalOutcome
from workflows.run_workflow import TaskRunWorkflow

log = get_logger(__name__)

UPDATE_TIMEOUT_S = 20.0  # no worker answering within this is an outage (503)

STATUS_OF = {
    contracts.E_APPROVAL_FORBIDDEN: 403,
    contracts.E_APPROVAL_CONFLICT: 409,
    contracts.E_APPROVAL_INVALID: 422,
}


class Decider(Protocol):
    """An authenticated caller (api.auth.Principal has this shape)."""

    @property
    def identity(self) -> str: ...

    @property
    def groups(self) -> Iterable[str]: ...

    def has(self, scope: str) -> bool: ...


@dataclass(frozen=True)
class DecideOutcome:
    """`status` is the HTTP answer: 200 counted, 403, 404, 409, 422, 503 (with `detail`)."""

    status: int
    detail: str
    run_id: str
    decision: str
    approver: str
    comment: str | None = None
    step_id: str | None = None
    approvals: int | None = None
    min_approvals: int | None = None
    done: bool | None = None
    problems: list[dict[str, Any]] | None = None  # 422: what is wrong with the edit
    edited: bool = False

    @property
    def counted(self) -> bool:
        return self.status == 200


def signed_decision(
    settings: Settings,
    run_id: str,
    step: str | None,
    identity: str,
    groups: Iterable[str],
    decision: str,
    comment: str | None,
    output: Any = None,
) -> ApprovalDecision:
    """A decision with the gateway's proof (raises LookupError with no key configured);
    `output`: the approver's edit of the gated step's output (None: no edit)."""
    if settings.approval_key is None:
        raise LookupError("no approval key is configured (DURATASK_APPROVAL_KEY)")
    plain = ApprovalDecision(
        decision=decision, approver=identity, comment=comment, groups=sorted(set(groups)),
        output=output,
    )  # fmt: skip
    return proofs.sign(
        settings.approval_key.get_secret_value().encode(),
        run_id,
        plain,
        step_id=step or "",
        nonce=secrets.token_hex(16),
        issued_at=datetime.now(UTC),
    )


async def decide(
    client: Client,
    settings: Settings,
    run_id: str,
    step: str | None,
    principal: Decider,
    decision: str,
    comment: str | None = None,
    output: Any = None,
) -> DecideOutcome:
    """Send `principal`'s decision on run `run_id` (at `step`, or whichever step waits),
    with `output` replacing the gated step's output when it is not None (an edit)."""
    base = DecideOutcome(0, "", run_id, decision, principal.identity, comment, step)
    if not principal.has("tasks:approve"):
        return replace(
            base, status=403, detail=f"'{principal.identity}' lacks the 'tasks:approve' scope"
        )
    try:
        signed = signed_decision(
            settings, run_id, step, principal.identity, principal.groups, decision, comment,
            output,
        )  # fmt: skip
    except LookupError as e:
        return replace(base, status=503, detail=f"approvals are not available: {e}")
    handle = client.get_workflow_handle_for(TaskRunWorkflow.run, run_id)
    try:
        out: ApprovalOutcome = await asyncio.wait_for(
            handle.execute_update(TaskRunWorkflow.decide, signed), UPDATE_TIMEOUT_S
        )
    except WorkflowUpdateFailedError as e:
        return _refused(e, base)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        detail = f"no worker answered within {UPDATE_TIMEOUT_S:.0f}s; the decision was not counted"
        return replace(base, status=503, detail=detail)
    except RPCError as e:
        return _rpc(e, base)
    log.info("approval decision counted", run_id=run_id, step_id=out.step_id,
             decision=decision, by=principal.identity, edited=output is not None)  # fmt: skip
    return DecideOutcome(
        200,
        f"{out.decision} by {out.approver} counted ({out.approvals}/{out.min_approvals})",
        run_id=run_id,
        decision=out.decision,
        approver=out.approver,
        comment=out.comment,
        step_id=out.step_id,
        approvals=out.approvals,
        min_approvals=out.min_approvals,
        done=out.done,
        edited=out.edited,
    )


def _refused(e: WorkflowUpdateFailedError, base: DecideOutcome) -> DecideOutcome:
    cause = e.cause
    problems = None
    if isinstance(cause, ApplicationError) and cause.type in STATUS_OF:
        status, detail = STATUS_OF[cause.type], cause.message
        details = cause.details[0] if cause.details else None
        if isinstance(details, dict) and isinstance(details.get("problems"), list):
            problems = details["problems"]
    elif "handler" in str(cause) and "not found" in str(cause):  # not a duratask run
        status, detail = 404, f"run '{base.run_id}' not found"
    else:
        status, detail = 409, f"the run refused the decision: {cause}"
    log.info("approval decision refused", run_id=base.run_id, status=status,
             reason=detail, by=base.approver)  # fmt: skip
    return replace(base, status=status, detail=detail, problems=problems)


def _rpc(e: RPCError, base: DecideOutcome) -> DecideOutcome:
    run_id = base.run_id
    if e.status == RPCStatusCode.NOT_FOUND:
        if "completed" in e.message.lower():
            detail = f"run '{run_id}' has finished: nothing waits for a decision"
            return replace(base, status=409, detail=detail)
        return replace(base, status=404, detail=f"run '{run_id}' not found")
    if e.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return replace(base, status=503, detail=f"Temporal is unavailable: {e.message}")
    if e.status == RPCStatusCode.FAILED_PRECONDITION:
        return replace(base, status=409, detail=e.message)
    return replace(base, status=502, detail=f"Temporal error: {e.message}")
