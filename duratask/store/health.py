"""The last health verdict of each definition, kept in the store.

An alert fires when a definition's verdict changes to `regression`, once per
transition. With the verdict in gateway memory, a restarted gateway (or a second one,
or the scheduled check in a worker) would alert again; here every checker shares one
row per definition, and only the checker whose conditional update changed the row
reports the transition, so two checkers racing still alert once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from duratask.store.tables import HealthVerdictRow


class StoredVerdict(BaseModel):
    definition_id: str
    verdict: str
    report: str  # the Health answer, as JSON
    checked_at: datetime
    changed_at: datetime


class Transition(BaseModel):
    """A verdict that changed with this check (`previous` None: the first one seen)."""

    definition_id: str
    previous: str | None
    verdict: str


class VerdictStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get(self, definition_id: str) -> StoredVerdict | None:
        async with self.sessions() as s:
            row = await s.get(HealthVerdictRow, definition_id)
        return _verdict(row) if row else None

    async def all(self) -> list[StoredVerdict]:
        async with self.sessions() as s:
            rows = (await s.scalars(select(HealthVerdictRow))).all()
        return [_verdict(r) for r in rows]

    async def record(self, definition_id: str, verdict: str, report: str) -> Transition | None:
        """Store this check's verdict; the transition if it changed (for this caller only)."""
        now = datetime.now(UTC)
        try:
            async with self.sessions.begin() as s:
                s.add(HealthVerdictRow(definition_id=definition_id, verdict=verdict,
                                       report=report, checked_at=now, changed_at=now))  # fmt: skip
            return Transition(definition_id=definition_id, previous=None, verdict=verdict)
        except IntegrityError:
            pass  # seen before
        async with self.sessions.begin() as s:
            before = await s.get(HealthVerdictRow, definition_id)
            previous = before.verdict if before else None
            changed = await s.execute(
                update(HealthVerdictRow)
                .where(
                    HealthVerdictRow.definition_id == definition_id,
                    HealthVerdictRow.verdict != verdict,
                )
                .values(verdict=verdict, changed_at=now)
            )
            await s.execute(
                update(HealthVerdictRow)
                .where(HealthVerdictRow.definition_id == definition_id)
                .values(report=report, checked_at=now)
            )
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            return Transition(definition_id=definition_id, previous=previous, verdict=verdict)
        return None


def _verdict(row: HealthVerdictRow) -> StoredVerdict:
    def utc(dt: datetime) -> datetime:
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)

    return StoredVerdict(
        definition_id=row.definition_id,
        verdict=row.verdict,
        report=row.report,
        checked_at=utc(row.checked_at),
        changed_at=utc(row.changed_at),
    )
