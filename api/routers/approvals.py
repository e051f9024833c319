"""Approvals: decide a waiting approval step, and list what waits for someone.

The approver is always the authenticated caller, never a field of the body.
Deciding is `duratask.approvals.decide` (shared with the console and MCP): it signs
the decision for the caller and sends it as a Workflow Update, so the workflow
itself answers (counted, not an approver, nothing waiting) with no pre-check here
that could race with the run.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import WorkflowExecution
from temporalio.service import RPCError

from api.auth import Principal
from api.deps import Approver, PrincipalDep, RunsDep
from api.errors import COMMON, TEMPORAL, ApiError, map_rpc_error, responses
from api.paging import decode_page_token, encode_page_token
from api.run_ids import child_route
from api.runs_service import RunService, _quote
from duratask import access, approvals
from duratask.logging import get_logger
from workflows import contracts
from workflows.approvals import MEMO_KEY, principal_names
from workflows.models import RunStatus

log = get_logger(__name__)
router = APIRouter(tags=["approvals"], responses=responses(*COMMON, 404, 409, *TEMPORAL))


Runs = RunsDep


class DecisionRequest(BaseModel):
    """The caller's decision; who decides comes from the bearer token."""

    model_config = ConfigDict(extra="forbid")
    decision: Literal["approve", "reject"]
    comment: str | None = Field(default=None, max_length=4000)
    step_id: str | None = Field(
        default=None, max_length=200, description="decide only if this step is the one waiting"
    )


class DecisionAccepted(BaseModel):
    """The run counted the decision; `done` when the step has what it needs."""

    run_id: str
    step_id: str | None
    decision: str
    approver: str
    comment: str | None
    accepted: bool = True
    approvals: int
    min_approvals: int
    done: bool


class HeldToolCall(BaseModel):
    """A tool call a policy holds for approval (docs/approvals.md#tool-policies)."""

    name: str
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="the call's arguments, secrets masked"
    )
    call_id: str | None = None
    policy: str | None = Field(default=None, description="the rule that holds it")


class PendingApproval(BaseModel):
    run_id: str
    kind: Literal["step", "tool_call"] = Field(
        default="step", description="an approval step, or a tool call held by a policy"
    )
    tool: HeldToolCall | None = None
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


DECIDE_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {**body, "description": text}
    for code, text in {
        403: "lacks tasks:approve, or the run says: not an approver of this step",
        404: "no such run",
        409: "no approval waiting, or this approver already decided",
        422: "the body is invalid",
        503: "Temporal or every worker is unavailable, or no approval key is set",
    }.items()
    for body in [responses(code)[code]]
}


@router.post("/v1/runs/{run_id}/approvals", responses=DECIDE_RESPONSES)
async def decide(run_id: str, body: DecisionRequest, runs: Runs, who: Approver) -> DecisionAccepted:
    """Approve or reject the approval step a run waits at (or the tool call a tool
    policy holds there), as the caller.

    404 unless it is a duratask run the caller may see (owner, team, admin, or an
    approver of the step it waits at). The decision is then signed for the caller and
    sent to the run as a Workflow Update; the answer is the run's own: 200 counted,
    403 not an approver of this step, 409 nothing waiting or already decided.
    """
    await runs.describe(run_id)
    out = await approvals.decide(
        runs.client, runs.settings, run_id, body.step_id, who, body.decision, body.comment
    )
    if not out.counted:
        raise ApiError(out.status, out.detail)
    return DecisionAccepted(
        run_id=run_id,
        step_id=out.step_id,
        decision=out.decision,
        approver=out.approver,
        comment=out.comment,
        approvals=out.approvals or 0,
        min_approvals=out.min_approvals or 1,
        done=bool(out.done),
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
        kind="tool_call" if memo.get("tool") else "step",
        tool=memo.get("tool"),
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


child_route(
    router, "/v1/runs/{run_id}/approvals", decide, methods=["POST"], responses=DECIDE_RESPONSES
)
