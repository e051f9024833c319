"""Approvals: decide a waiting approval step, and list what waits for someone.

The approver is always the authenticated caller, never a field of the body. The
gateway checks what it can see cheaply (the run is parked at an approval step, the
caller is on its approvers list, has not voted yet) from the run's search attributes
and memo, which need no worker; the workflow enforces the same rule again, because
a raw Temporal signal bypasses the gateway.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError

from api.auth import Principal
from api.deps import Approver, PrincipalDep, RunsDep
from api.errors import COMMON, TEMPORAL, ApiError, conflict, map_rpc_error, responses
from api.paging import decode_page_token, encode_page_token
from api.run_ids import child_route
from api.runs_service import CLOSED_STATUS, RunService, _quote
from duratask import access
from duratask.logging import get_logger
from workflows import contracts
from workflows.approvals import MEMO_KEY, is_allowed, normalise, principal_names
from workflows.models import ApprovalDecision, RunStatus
from workflows.run_workflow import TaskRunWorkflow

log = get_logger(__name__)
router = APIRouter(tags=["approvals"], responses=responses(*COMMON, 404, 409, *TEMPORAL))


Runs = RunsDep


class DecisionRequest(BaseModel):
    """The caller's decision; who decides comes from the bearer token."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=4000)


class DecisionAccepted(BaseModel):
    run_id: str
    step_id: str | None
    decision: str
    approver: str
    comment: str | None
    accepted: bool = True


class PendingApproval(BaseModel):
    run_id: str
    definition_id: str | None = None
    owner: str | None = None
    step_id: str | None = None
    prompt: str | None = None
    approvers: list[str] = Field(default_factory=list)
    min_approvals: int = 1
    votes: list[dict[str, Any]] = Field(default_factory=list)
    requested_at: datetime | None = None
    deadline: datetime | None = None
    on_timeout: str | None = None
    temporal_ui_url: str | None = None


class ApprovalPage(BaseModel):
    approver: list[str]
    items: list[PendingApproval]
    next_page_token: str | None = None


@router.post("/v1/runs/{run_id}/approvals", status_code=status.HTTP_202_ACCEPTED)
async def decide(run_id: str, body: DecisionRequest, runs: Runs, who: Approver) -> DecisionAccepted:
    """Approve or reject the approval step a run waits at, as the caller.

    403 if the caller is not one of the step's approvers, 409 if the run is not
    waiting for approval or the caller has already decided this step.
    """
    desc = await runs.describe(run_id)
    if desc.status != WorkflowExecutionStatus.RUNNING:
        closed = CLOSED_STATUS.get(desc.status, RunStatus.failed).value
        raise conflict(f"run '{run_id}' is {closed}, not waiting for approval", run_status=closed)
    sa = desc.typed_search_attributes
    current = sa.get(contracts.SA_STATUS)
    approvers = sa.get(contracts.SA_APPROVERS) or []
    if current != RunStatus.awaiting_approval.value or not approvers:
        raise conflict(
            f"run '{run_id}' is not waiting for approval (status: {current})", run_status=current
        )
    if not is_allowed(approvers, who.identity, who.groups):
        raise ApiError(
            403,
            f"'{who.identity}' may not decide this approval (approvers: {', '.join(approvers)})",
        )
    pending = await desc.memo_value(MEMO_KEY, None) or {}
    me = normalise(who.identity)
    if any(normalise(v.get("approver", "")) == me for v in pending.get("votes", [])):
        raise conflict(f"'{who.identity}' has already decided step '{pending.get('step_id')}'")
    decision = ApprovalDecision(
        decision=body.decision,
        approver=who.identity,
        comment=body.comment,
        groups=sorted(who.groups),
    )
    try:
        await runs.handle(run_id).signal(TaskRunWorkflow.approve, decision)
    except RPCError as e:
        raise map_rpc_error(e) from None
    log.info("approval decision sent", run_id=run_id, decision=body.decision, by=who.identity)
    return DecisionAccepted(
        run_id=run_id,
        step_id=pending.get("step_id"),
        decision=body.decision,
        approver=who.identity,
        comment=body.comment,
    )


@router.get("/v1/approvals")
async def list_approvals(
    runs: Runs,
    who: PrincipalDep,
    approver: str = Query("me", description="'me' (you and your groups) or an identity"),
    page_size: int = Query(50, ge=1, le=500),
    page_token: str | None = None,
) -> ApprovalPage:
    """Runs waiting for a decision by `approver`, oldest request first. Your own inbox
    (`me`) lists every run you may decide; another approver's lists only the runs you
    may also see (yours, your teams', or all with `tasks:admin`)."""
    names = sorted(_names_for(who, approver))
    mine = approver.strip().lower() in ("", "me")
    either = " OR ".join(f"{contracts.SA_APPROVERS.name} = {_quote(n)}" for n in names)
    query = (
        f"WorkflowType = 'TaskRunWorkflow' AND ExecutionStatus = 'Running'"
        f" AND {contracts.SA_STATUS.name} = '{RunStatus.awaiting_approval.value}'"
        f" AND ({either})"
    )
    if not mine:
        query = access.with_visibility(query, who)
    token = decode_page_token(page_token)
    iterator = runs.client.list_workflows(query, page_size=page_size, next_page_token=token)
    try:
        await iterator.fetch_next_page()
    except RPCError as e:
        raise map_rpc_error(e) from None
    items = await asyncio.gather(*(_item(runs, w) for w in iterator.current_page or []))
    nxt = iterator.next_page_token
    return ApprovalPage(
        approver=names,
        items=sorted(items, key=lambda i: str(i.requested_at or "")),
        next_page_token=encode_page_token(nxt),
    )


def _names_for(who: Principal, approver: str) -> set[str]:
    """`me` is the caller with their groups (any scope); anyone else needs tasks:read."""
    if approver.strip().lower() in ("", "me"):
        if not (who.has("tasks:approve") or who.has("tasks:read")):
            raise ApiError(403, f"'{who.identity}' lacks the 'tasks:approve' or 'tasks:read' scope")
        return principal_names(who.identity, who.groups)
    if not who.has("tasks:read"):
        raise ApiError(
            403, f"'{who.identity}' lacks the 'tasks:read' scope to list others' approvals"
        )
    return principal_names(approver)


async def _item(runs: RunService, w: WorkflowExecution) -> PendingApproval:
    sa = w.typed_search_attributes
    memo: dict[str, Any] = {}
    try:
        memo = await w.memo_value(MEMO_KEY, None) or {}
    except Exception as e:  # an unreadable memo must not hide the run
        log.warning("approval memo unreadable", run_id=w.id, error=str(e))
    return PendingApproval(
        run_id=w.id,
        definition_id=sa.get(contracts.SA_DEFINITION),
        owner=sa.get(contracts.SA_OWNER),
        step_id=memo.get("step_id"),
        prompt=memo.get("prompt"),
        approvers=memo.get("approvers") or list(sa.get(contracts.SA_APPROVERS) or []),
        min_approvals=memo.get("min_approvals", 1),
        votes=memo.get("votes", []),
        requested_at=memo.get("requested_at"),
        deadline=memo.get("deadline"),
        on_timeout=memo.get("on_timeout"),
        temporal_ui_url=runs.ui_url(w.id),
    )


child_route(router, "/v1/runs/{run_id}/approvals", decide, methods=["POST"], status_code=202)
