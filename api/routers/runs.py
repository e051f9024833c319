"""`/v1/runs`: start, read, list, wait for, cancel, retry, re-prioritise, message."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response, status

from api.deps import Reader, RunsDep, Writer
from api.errors import COMMON, TEMPORAL, responses
from api.routers.collab import Collab, with_collab
from api.run_ids import child_route
from api.schemas import (
    BulkCancelRequest,
    CancelRunRequest,
    MessageRequest,
    PatchRunRequest,
    RetryRunRequest,
    RunPage,
    RunResult,
    RunTree,
    RunView,
    StartRunRequest,
)
from workflows.models import Intervention, RunState

router = APIRouter(
    prefix="/v1/runs", tags=["runs"], responses=responses(*COMMON, 404, 409, *TEMPORAL)
)


Runs = RunsDep


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "The idempotency_key was used: that run", "model": RunState}},
)
async def start_run(body: StartRunRequest, response: Response, runs: Runs, who: Writer) -> RunState:
    """Start a run (201). With an `idempotency_key` already used, returns that run (200).

    The run is owned by the caller (`owner` may name another identity only with
    `tasks:admin`, else 403) and shared with `team` when given (one of the caller's
    groups, else 403). The definition must be one the caller may see (else 404)."""
    state, created = await runs.start(body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return state


@router.get("")
async def list_runs(
    runs: Runs,
    collab: Collab,
    _: Reader,
    definition_id: str | None = None,
    status: str | None = None,
    owner: str | None = None,
    trigger: str | None = None,
    parent: str | None = None,
    page_size: int = Query(50, ge=1, le=500),
    page_token: str | None = None,
) -> RunPage:
    """Runs, newest first; each with its `source` and current `assignee` (a handoff)."""
    items, token = await runs.search(
        definition_id, status, owner, trigger, parent, page_size, page_token
    )
    held = await collab.assignees([r.run_id for r in items])
    for r in items:
        r.assignee = held.get(r.run_id)
    return RunPage(items=items, next_page_token=token)


@router.post("/bulk-cancel")
async def bulk_cancel(body: BulkCancelRequest, runs: Runs, who: Writer) -> dict[str, Any]:
    results = await runs.bulk_cancel(body.run_ids, body.reason)
    return {"results": results, "cancelled": sum(1 for r in results if r["ok"])}


@router.get("/{run_id}")
async def get_run(
    run_id: str,
    runs: Runs,
    collab: Collab,
    _: Reader,
    tree: bool = Query(False, description="Return the run and all its descendants as a tree"),
) -> RunView | RunTree:
    """The run's state; `children` lists the child runs it started, with their status;
    `rating_summary`, `comment_count` and `assignee` come from its thread (docs/collaboration.md)."""
    if tree:
        return await runs.tree(run_id)
    return await with_collab(await runs.get_with_children(run_id), collab)


@router.get(
    "/{run_id}/result",
    responses={202: {"description": "Not ended within `wait`: the state now", "model": RunResult}},
)
async def get_result(
    run_id: str,
    response: Response,
    runs: Runs,
    _: Reader,
    wait: float = Query(0, ge=0, le=300, description="Seconds to wait for the run to end"),
) -> RunResult:
    """The run's result; 202 with the current state if it has not ended within `wait`."""
    state, done = await runs.result(run_id, wait)
    if not done:
        response.status_code = status.HTTP_202_ACCEPTED
    return RunResult(
        run_id=run_id,
        status=state.status.value,
        done=done,
        result=state.result,
        error=state.error,
        state=state,
    )


@router.post("/{run_id}/cancel", status_code=status.HTTP_202_ACCEPTED)
async def cancel_run(
    run_id: str, runs: Runs, who: Writer, body: CancelRunRequest | None = None
) -> dict[str, Any]:
    reason = body.reason if body else ""
    await runs.cancel(run_id, reason)
    return {"run_id": run_id, "status": "cancelling", "reason": reason}


@router.post("/{run_id}/retry", status_code=status.HTTP_201_CREATED)
async def retry_run(
    run_id: str, runs: Runs, who: Writer, body: RetryRunRequest | None = None
) -> RunState:
    return await runs.retry(run_id, body.input if body else None)


@router.patch("/{run_id}")
async def patch_run(run_id: str, body: PatchRunRequest, runs: Runs, _: Writer) -> dict[str, Any]:
    await runs.set_priority(run_id, body.priority)
    return {"run_id": run_id, "priority": body.priority.value}


@router.post("/{run_id}/messages", status_code=status.HTTP_202_ACCEPTED)
async def send_message(
    run_id: str, body: MessageRequest, runs: Runs, who: Writer
) -> dict[str, Any]:
    """Intervene in a running agent: `steer` now, `collect` for later, or `followup`."""
    await runs.message(
        run_id, Intervention(mode=body.mode, message=body.message, sender=who.identity)
    )
    return {"run_id": run_id, "mode": body.mode, "accepted": True}


# ---------------------------------------------------------------- child run ids
# Registered last: the child-id form of each per-run route (api/run_ids.py).
child_route(router, "/{run_id}/result", get_result, methods=["GET"])
child_route(router, "/{run_id}/cancel", cancel_run, methods=["POST"], status_code=202)
child_route(router, "/{run_id}/messages", send_message, methods=["POST"], status_code=202)
child_route(router, "/{run_id}", get_run, methods=["GET"])
