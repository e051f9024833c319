"""Collaboration around runs in the store: ratings, comment threads and handoffs.

Runs live in Temporal, but what people say about them does not belong in a workflow's
history (it would need a worker to record it, and it outlives the run's retention):
ratings and the thread are rows keyed by run id. A `handoff` comment also moves the
run's current assignee, in the same transaction, so the thread and the assignee never
disagree. Identities compare case-insensitively when listing what was handed to whom.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from duratask.store.tables import RunAssigneeRow, RunCommentRow, RunMentionRow, RunRatingRow

# `@bob`, `@bob.smith`, `@lead@example.com`: an identity after an @ that starts a word
MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9_][\w.+-]*(?:@[\w-]+(?:\.[\w-]+)+)?)")

Score = Literal["up", "down"]


def mentions_in(body: str) -> list[str]:
    """The identities `@mentioned` in `body`, lower-cased, each once, in order."""
    found: list[str] = []
    for m in MENTION.finditer(body):
        who = m.group(1).rstrip(".-+").lower()
        if who and who not in found:
            found.append(who)
    return found


CommentKind = Literal["comment", "note", "handoff"]


class Rating(BaseModel):
    run_id: str
    identity: str
    score: Score
    comment: str | None = None
    definition_id: str | None = None
    created_at: datetime
    updated_at: datetime


class Comment(BaseModel):
    id: int
    run_id: str
    author: str
    kind: CommentKind
    body: str
    to: str | None = None
    created_at: datetime
    mentions: list[str] = []  # the identities it @mentions (lower-cased)


class Assignment(BaseModel):
    run_id: str
    assignee: str
    assigned_by: str
    assigned_at: datetime
    comment_id: int


class CollabSummary(BaseModel):
    """What a run view shows of the collaboration around it."""

    up: int = 0
    down: int = 0
    comment_count: int = 0
    assignee: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.up or self.down or self.comment_count or self.assignee)


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _rating(row: RunRatingRow) -> Rating:
    return Rating(
        run_id=row.run_id,
        identity=row.identity,
        score=row.score,  # type: ignore[arg-type]
        comment=row.comment,
        definition_id=row.definition_id,
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


def _comment(row: RunCommentRow) -> Comment:
    return Comment(
        id=row.id,
        run_id=row.run_id,
        author=row.author,
        kind=row.kind,  # type: ignore[arg-type]
        body=row.body,
        to=row.handoff_to,
        created_at=_utc(row.created_at),
        mentions=mentions_in(row.body),
    )


def _assignment(row: RunAssigneeRow) -> Assignment:
    return Assignment(
        run_id=row.run_id,
        assignee=row.assignee,
        assigned_by=row.assigned_by,
        assigned_at=_utc(row.assigned_at),
        comment_id=row.comment_id,
    )


class CollabStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    # ------------------------------------------------------------ ratings
    async def rate(
        self,
        run_id: str,
        identity: str,
        score: Score,
        comment: str | None = None,
        definition_id: str | None = None,
    ) -> tuple[Rating, bool]:
        """Record `identity`'s rating of the run; returns it and whether it is new."""
        now = datetime.now(UTC)
        for attempt in range(2):  # a concurrent first rating by the same identity: update it
            try:
                async with self.sessions.begin() as s:
                    row = await s.get(RunRatingRow, (run_id, identity), with_for_update=True)
                    created = row is None
                    if row is None:
                        row = RunRatingRow(run_id=run_id, identity=identity, created_at=now)
                        s.add(row)
                    row.score = score
                    row.comment = comment
                    row.definition_id = definition_id
                    row.updated_at = now
                return _rating(row), created
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def unrate(self, run_id: str, identity: str) -> bool:
        async with self.sessions.begin() as s:
            row = await s.get(RunRatingRow, (run_id, identity))
            if row is None:
                return False
            await s.delete(row)
            return True

    async def ratings(self, run_id: str) -> list[Rating]:
        async with self.sessions() as s:
            rows = await s.scalars(
                select(RunRatingRow)
                .where(RunRatingRow.run_id == run_id)
                .order_by(RunRatingRow.updated_at, RunRatingRow.identity)
            )
            return [_rating(r) for r in rows]

    async def all_ratings(
        self,
        definition_id: str | None = None,
        identity: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Rating], int, int]:
        """Ratings across runs, newest first, with the up and down totals of the filter."""
        where = []
        if definition_id is not None:
            where.append(RunRatingRow.definition_id == definition_id)
        if identity is not None:
            where.append(func.lower(RunRatingRow.identity) == identity.strip().lower())
        totals = select(RunRatingRow.score, func.count()).where(*where).group_by(RunRatingRow.score)
        page = (
            select(RunRatingRow)
            .where(*where)
            .order_by(RunRatingRow.updated_at.desc(), RunRatingRow.run_id)
            .limit(limit)
            .offset(offset)
        )
        async with self.sessions() as s:
            counts = {score: n for score, n in (await s.execute(totals)).all()}
            rows = await s.scalars(page)
            return [_rating(r) for r in rows], counts.get("up", 0), counts.get("down", 0)

    # ------------------------------------------------------------ thread
    async def add_comment(
        self, run_id: str, author: str, kind: CommentKind, body: str, to: str | None = None
    ) -> Comment:
        """Append to the run's thread; a handoff also makes `to` the run's assignee."""
        now = datetime.now(UTC)
        async with self.sessions.begin() as s:
            row = RunCommentRow(
                run_id=run_id, author=author, kind=kind, body=body,
                handoff_to=to if kind == "handoff" else None, created_at=now,
            )  # fmt: skip
            s.add(row)
            await s.flush()  # assigns row.id
            for who in mentions_in(body):
                s.add(RunMentionRow(comment_id=row.id, identity=who, run_id=run_id,
                                    created_at=now))  # fmt: skip
            if kind == "handoff" and to:
                current = await s.get(RunAssigneeRow, run_id, with_for_update=True)
                if current is None:
                    current = RunAssigneeRow(run_id=run_id)
                    s.add(current)
                current.assignee = to
                current.assigned_by = author
                current.assigned_at = now
                current.comment_id = row.id
        return _comment(row)

    async def comments(
        self,
        run_id: str,
        limit: int = 50,
        after: int | None = None,
        kind: CommentKind | None = None,
    ) -> tuple[list[Comment], int | None]:
        """Oldest first; the cursor to pass as `after` for the next page, if any."""
        q = select(RunCommentRow).where(RunCommentRow.run_id == run_id)
        if after is not None:
            q = q.where(RunCommentRow.id > after)
        if kind is not None:
            q = q.where(RunCommentRow.kind == kind)
        async with self.sessions() as s:
            rows = list(await s.scalars(q.order_by(RunCommentRow.id).limit(limit + 1)))
        more = len(rows) > limit
        rows = rows[:limit]
        return [_comment(r) for r in rows], rows[-1].id if more else None

    async def assignee(self, run_id: str) -> Assignment | None:
        async with self.sessions() as s:
            row = await s.get(RunAssigneeRow, run_id)
            return _assignment(row) if row else None

    async def assignees(self, run_ids: list[str]) -> dict[str, str]:
        """The current assignee of each of `run_ids` that has one (one query for a page)."""
        if not run_ids:
            return {}
        q = select(RunAssigneeRow.run_id, RunAssigneeRow.assignee).where(
            RunAssigneeRow.run_id.in_(run_ids)
        )
        async with self.sessions() as s:
            return {r.run_id: r.assignee for r in (await s.execute(q)).all()}

    async def mentions(
        self, to: str, limit: int = 50, before: int | None = None
    ) -> tuple[list[Comment], int | None]:
        """Comments that @mention `to`, newest first."""
        q = (
            select(RunCommentRow)
            .join(RunMentionRow, RunMentionRow.comment_id == RunCommentRow.id)
            .where(RunMentionRow.identity == to.strip().lower())
        )
        if before is not None:
            q = q.where(RunCommentRow.id < before)
        async with self.sessions() as s:
            rows = (await s.scalars(q.order_by(RunCommentRow.id.desc()).limit(limit + 1))).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return [_comment(r) for r in rows], rows[-1].id if more else None

    async def handoffs(
        self, to: str, limit: int = 50, before: int | None = None, current_only: bool = False
    ) -> tuple[list[tuple[Comment, bool]], int | None]:
        """Handoffs to `to`, newest first, each with whether `to` still holds the run."""
        who = to.strip().lower()
        q = (
            select(RunCommentRow, RunAssigneeRow.comment_id)
            .outerjoin(RunAssigneeRow, RunAssigneeRow.run_id == RunCommentRow.run_id)
            .where(RunCommentRow.kind == "handoff", func.lower(RunCommentRow.handoff_to) == who)
        )
        if before is not None:
            q = q.where(RunCommentRow.id < before)
        if current_only:
            q = q.where(RunAssigneeRow.comment_id == RunCommentRow.id)
        async with self.sessions() as s:
            rows = (await s.execute(q.order_by(RunCommentRow.id.desc()).limit(limit + 1))).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [(_comment(c), current_id == c.id) for c, current_id in rows]
        return items, rows[-1][0].id if more else None

    # ------------------------------------------------------------ summary
    async def summary(self, run_id: str) -> CollabSummary:
        """Ratings up/down, thread length and assignee, in one query."""

        def count(score: str) -> ScalarSelect[int]:
            return (
                select(func.count())
                .select_from(RunRatingRow)
                .where(RunRatingRow.run_id == run_id, RunRatingRow.score == score)
                .scalar_subquery()
            )

        comments = (
            select(func.count())
            .select_from(RunCommentRow)
            .where(RunCommentRow.run_id == run_id)
            .scalar_subquery()
        )
        assignee = (
            select(RunAssigneeRow.assignee).where(RunAssigneeRow.run_id == run_id).scalar_subquery()
        )
        async with self.sessions() as s:
            up, down, n, who = (await s.execute(select(count("up"), count("down"), comments,
                                                       assignee))).one()  # fmt: skip
        return CollabSummary(up=up or 0, down=down or 0, comment_count=n or 0, assignee=who)
