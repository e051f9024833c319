"""Collaboration on runs: ratings of finished runs, and a thread of comments, notes and
handoffs on any run.

The author of a comment and the rater are always the authenticated caller, never a
body field. A thread is as visible as its run (duratask/access.py); the reports across
runs show only what the caller may see: `/v1/handoffs` the runs they may see, and
`/v1/ratings` a visible definition's ratings or, without one, the caller's own. The run must exist in Temporal to be rated or commented on; reading the
thread or the ratings of a run Temporal no longer keeps (past retention) still works
while the store has something for it.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from api.auth import Principal
from api.deps import DefinitionsDep, Reader, RunsDep, SettingsDep, Writer
from api.errors import COMMON, TEMPORAL, ApiError, conflict, responses, unprocessable
from api.mentions import notify_mentions
from api.run_ids import child_route
from api.runs_service import CLOSED_STATUS, RunService
from api.schemas import MAX_INT, RatingSummary, RunView
from duratask.access import is_admin
from duratask.logging import get_logger
from duratask.store.collab import (
    Assignment,
    CollabStore,
    CollabSummary,
    Comment,
    CommentKind,
    Rating,
    Score,
)
from workflows import contracts
from workflows.models import RunComment, RunState, RunStatus
from workflows.run_workflow import TaskRunWorkflow

log = get_logger(__name__)
router = APIRouter(tags=["collaboration"], responses=responses(*COMMON, 404, 409, *TEMPORAL))

MAX_BODY = 10_000


def get_collab(request: Request) -> CollabStore:
    state = request.app.state
    store: CollabStore | None = getattr(state, "collab_store", None)
    if store is None:
        store = state.collab_store = CollabStore(state.engine)
    return store


Collab = Annotated[CollabStore, Depends(get_collab)]
Runs = RunsDep


def _no_author_field(data: Any, field: str) -> Any:
    if isinstance(data, dict) and field in data:
        raise ValueError(
            f"'{field}' is not a body field: it is always the caller's identity (bearer token)"
        )
    return data


class RatingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    score: Score
    comment: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="before")
    @classmethod
    def _who(cls, data: Any) -> Any:
        return _no_author_field(_no_author_field(data, "identity"), "rater")


class RatingList(BaseModel):
    run_id: str
    summary: RatingSummary
    items: list[Rating]


class CommentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    body: str = Field(max_length=MAX_BODY)
    kind: CommentKind = "comment"
    to: str | None = Field(default=None, max_length=255)

    @model_validator(mode="before")
    @classmethod
    def _who(cls, data: Any) -> Any:
        return _no_author_field(data, "author")

    @model_validator(mode="after")
    def _shape(self) -> CommentRequest:
        self.body = self.body.strip()
        if not self.body:
            raise ValueError("'body' must not be empty")
        to = (self.to or "").strip()
        if self.kind == "handoff" and not to:
            raise ValueError("a handoff needs 'to': the identity taking the run over")
        if self.kind != "handoff" and self.to is not None:
            raise ValueError(f"'to' is only for kind 'handoff', not '{self.kind}'")
        self.to = to or None
        return self


class CommentPage(BaseModel):
    run_id: str
    assignee: Assignment | None = None
    items: list[Comment]
    next_page_token: str | None = None


class Handoff(Comment):
    current: bool = Field(description="whether the run is still assigned to `to`")


class HandoffPage(BaseModel):
    to: str
    items: list[Handoff]
    next_page_token: str | None = None


# ---------------------------------------------------------------- helpers


async def _require_run(runs: RunService, run_id: str) -> Any:
    """The run's Temporal description; 404 if Temporal does not know it."""
    return await runs.describe(run_id)


async def _known(runs: RunService, collab: CollabStore, run_id: str) -> None:
    """For reads: a run the caller may see. Past Temporal's retention its owner is
    unknown, so only an admin reads what the store still has for it."""
    try:
        await _require_run(runs, run_id)
    except ApiError as e:
        if e.status != 404 or not is_admin(runs.principal) or (await collab.summary(run_id)).empty:
            raise


def _cursor(token: str | None) -> int | None:
    if token is None or token == "":
        return None
    if not (token.isascii() and token.isdigit() and len(token) <= 18):  # '²'.isdigit()
        raise unprocessable(f"page_token {token[:40]!r} is not a token this endpoint gave out")
    return int(token)


def _summary(ratings: list[Rating]) -> RatingSummary:
    up = sum(1 for r in ratings if r.score == "up")
    return RatingSummary(up=up, down=len(ratings) - up)


def _handoff_target(who: Principal, to: str) -> str:
    return who.identity if to.strip().lower() in ("", "me") else to.strip()


async def with_collab(state: RunState, collab: CollabStore) -> RunView:
    """The run's state with its rating summary, comment count and assignee (one query)."""
    s: CollabSummary = await collab.summary(state.run_id)
    return RunView(
        **dict(state),
        rating_summary=RatingSummary(up=s.up, down=s.down),
        comment_count=s.comment_count,
        assignee=s.assignee,
    )


# ---------------------------------------------------------------- ratings


@router.put(
    "/v1/runs/{run_id}/rating",
    responses={201: {"description": "A first rating by this caller", "model": Rating}},
)
async def rate_run(
    run_id: str, body: RatingRequest, response: Response, runs: Runs, collab: Collab, who: Writer
) -> Rating:
    """Rate a finished run as the caller (201 the first time, 200 when it replaces one).

    409 if the run has not finished (the detail names its status), 404 if unknown.
    """
    desc = await _require_run(runs, run_id)
    sa = desc.typed_search_attributes
    if desc.status == WorkflowExecutionStatus.RUNNING:
        current = sa.get(contracts.SA_STATUS) or RunStatus.running.value
        raise conflict(
            f"run '{run_id}' is {current}: only a finished run (completed, failed or "
            "cancelled) can be rated",
            run_status=current,
        )
    comment = (body.comment or "").strip() or None
    rating, created = await collab.rate(
        run_id, who.identity, body.score, comment, sa.get(contracts.SA_DEFINITION)
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    log.info("run rated", run_id=run_id, score=body.score, by=who.identity, new=created,
             run_status=CLOSED_STATUS.get(desc.status, RunStatus.failed).value)  # fmt: skip
    return rating


@router.delete("/v1/runs/{run_id}/rating", status_code=status.HTTP_204_NO_CONTENT)
async def unrate_run(run_id: str, collab: Collab, who: Writer) -> None:
    """Withdraw the caller's rating of the run (404 if they had none)."""
    if not await collab.unrate(run_id, who.identity):
        raise ApiError(404, f"'{who.identity}' has not rated run '{run_id}'")


@router.get("/v1/runs/{run_id}/ratings")
async def list_ratings(run_id: str, runs: Runs, collab: Collab, _: Reader) -> RatingList:
    """Every identity's rating of the run, oldest first, with the up/down counts."""
    await _known(runs, collab, run_id)
    items = await collab.ratings(run_id)
    return RatingList(run_id=run_id, summary=_summary(items), items=items)


class RatingReport(BaseModel):
    definition_id: str | None = None
    identity: str | None = None
    summary: RatingSummary
    total: int
    items: list[Rating]


@router.get("/v1/ratings")
async def rating_report(
    collab: Collab,
    defs: DefinitionsDep,
    who: Reader,
    definition_id: str | None = None,
    identity: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_INT),
) -> RatingReport:
    """Ratings across runs (of one definition, by one identity), newest first, with totals.
    Without `tasks:admin`: everyone's ratings of a definition you may see (404 for one you
    may not), else only your own ratings."""
    if not is_admin(who):
        if definition_id is not None:
            await defs.get(definition_id)  # 404 unless the caller may see it
        elif identity not in (None, who.identity):
            raise ApiError(
                403, f"'{who.identity}' may list others' ratings only per definition they see"
            )
        else:
            identity = who.identity
    items, up, down = await collab.all_ratings(definition_id, identity, limit, offset)
    return RatingReport(
        definition_id=definition_id,
        identity=identity,
        summary=RatingSummary(up=up, down=down),
        total=up + down,
        items=items,
    )


# ---------------------------------------------------------------- thread


@router.post("/v1/runs/{run_id}/comments", status_code=status.HTTP_201_CREATED)
async def add_comment(
    run_id: str,
    body: CommentRequest,
    runs: Runs,
    collab: Collab,
    who: Writer,
    settings: SettingsDep,
) -> Comment:
    """Add a comment, a note, or a handoff (`to` becomes the run's assignee) as the caller.

    Every `@identity` in the body is a mention: listed at `GET /v1/mentions?to=` and sent
    to the notify webhook (`DURATASK_NOTIFY_WEBHOOK_URL`), one message per identity."""
    desc = await _require_run(runs, run_id)
    comment = await collab.add_comment(run_id, who.identity, body.kind, body.body, body.to)
    log.info("run comment added", run_id=run_id, kind=body.kind, by=who.identity, to=body.to)
    notify_mentions(settings, comment)
    if desc.status == WorkflowExecutionStatus.RUNNING:
        await _announce(runs, run_id, comment)
    return comment


async def _announce(runs: RunService, run_id: str, c: Comment) -> None:
    """Put the entry in the running run's events and live stream. The store has it
    already, so a run that closed meanwhile loses nothing: log it and go on."""
    entry = RunComment(comment_id=c.id, kind=c.kind, author=c.author, body=c.body, to=c.to)
    try:
        await runs.handle(run_id).signal(TaskRunWorkflow.comment, entry)
    except RPCError as e:
        log.info("comment not announced to the run", run_id=run_id, reason=e.message)


@router.get("/v1/runs/{run_id}/comments")
async def list_comments(
    run_id: str,
    runs: Runs,
    collab: Collab,
    _: Reader,
    kind: CommentKind | None = None,
    page_size: int = Query(50, ge=1, le=500),
    page_token: str | None = None,
) -> CommentPage:
    """The run's thread, oldest first, with its current assignee."""
    await _known(runs, collab, run_id)
    items, nxt = await collab.comments(run_id, page_size, _cursor(page_token), kind)
    return CommentPage(
        run_id=run_id,
        assignee=await collab.assignee(run_id),
        items=items,
        next_page_token=str(nxt) if nxt is not None else None,
    )


class MentionPage(BaseModel):
    to: str
    items: list[Comment]
    next_page_token: str | None = None


@router.get("/v1/mentions")
async def list_mentions(
    collab: Collab,
    who: Reader,
    to: str = Query("me", description="'me' or an identity"),
    page_size: int = Query(50, ge=1, le=500),
    page_token: str | None = None,
) -> MentionPage:
    """Comments that @mention `to` (default: the caller), newest first."""
    target = _handoff_target(who, to)
    items, nxt = await collab.mentions(target, page_size, _cursor(page_token))
    return MentionPage(
        to=target, items=items, next_page_token=str(nxt) if nxt is not None else None
    )


@router.get("/v1/handoffs")
async def list_handoffs(
    collab: Collab,
    runs: Runs,
    who: Reader,
    to: str = Query("me", description="'me' or an identity"),
    current: bool = Query(False, description="only runs still assigned to `to`"),
    page_size: int = Query(50, ge=1, le=500),
    page_token: str | None = None,
) -> HandoffPage:
    """Runs handed to `to` (default: the caller), newest handoff first: those of the runs
    the caller may see."""
    target = _handoff_target(who, to)
    items, nxt = await collab.handoffs(target, page_size, _cursor(page_token), current)
    seen = await asyncio.gather(*(runs.known(c.run_id) for c, _ in items))
    visible = [item for item, ok in zip(items, seen, strict=True) if ok]
    return HandoffPage(
        to=target,
        items=[Handoff(**dict(c), current=is_current) for c, is_current in visible],
        next_page_token=str(nxt) if nxt is not None else None,
    )


# ---------------------------------------------------------------- child run ids
child_route(router, "/v1/runs/{run_id}/rating", rate_run, methods=["PUT"])
child_route(router, "/v1/runs/{run_id}/rating", unrate_run, methods=["DELETE"], status_code=204)
child_route(router, "/v1/runs/{run_id}/ratings", list_ratings, methods=["GET"])
child_route(router, "/v1/runs/{run_id}/comments", add_comment, methods=["POST"], status_code=201)
child_route(router, "/v1/runs/{run_id}/comments", list_comments, methods=["GET"])
