"""The audit trail: who started, cancelled, retried, re-prioritised or messaged a run,
and who changed a definition, a schedule or the scheduling switch, and when.

Each entry carries the owner and team of the resource it concerns, so the listing
applies the same rule as everything else (duratask/access.py): admins read all,
others the entries about their own and their teams' resources, and their own acts.
Recording never fails the action it records: a store error is logged and dropped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from duratask.access import Caller, is_admin
from duratask.logging import get_logger
from duratask.store.tables import AuditRow

log = get_logger(__name__)

MAX_PAGE = 500


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    kind: str
    resource_id: str
    owner: str | None = None
    team: str | None = None
    detail: dict[str, Any]


class AuditStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def record(
        self,
        actor: str,
        action: str,
        kind: str,
        resource_id: str,
        owner: str | None = None,
        team: str | None = None,
        **detail: Any,
    ) -> None:
        row = AuditRow(
            at=datetime.now(UTC), actor=actor, action=action, kind=kind,
            resource_id=resource_id, owner=owner, team=team,
            detail=json.dumps({k: v for k, v in detail.items() if v is not None}, default=str),
        )  # fmt: skip
        try:
            async with self.sessions.begin() as s:
                s.add(row)
        except Exception as e:  # the act is done; losing its record must not undo it
            log.error("audit entry not recorded", action=action, resource=resource_id, error=str(e))

    async def list(
        self,
        caller: Caller,
        limit: int = 100,
        before: int | None = None,
        kind: str | None = None,
        resource_id: str | None = None,
        actor: str | None = None,
    ) -> tuple[list[AuditEntry], int | None]:
        """Newest first; the second value is the cursor of the next page (None: no more)."""
        limit = max(1, min(limit, MAX_PAGE))
        q = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit + 1)
        if not is_admin(caller):
            mine = [AuditRow.owner == caller.identity, AuditRow.actor == caller.identity]
            if caller.groups:
                mine.append(AuditRow.team.in_(sorted(caller.groups)))
            q = q.where(or_(*mine))
        if before is not None:
            q = q.where(AuditRow.id < before)
        if kind:
            q = q.where(AuditRow.kind == kind)
        if resource_id:
            q = q.where(AuditRow.resource_id == resource_id)
        if actor:
            q = q.where(AuditRow.actor == actor)
        async with self.sessions() as s:
            rows = list((await s.execute(q)).scalars())
        more = len(rows) > limit
        rows = rows[:limit]
        entries = [_entry(r) for r in rows]
        return entries, (rows[-1].id if more and rows else None)


def _entry(r: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=r.id, at=r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC), actor=r.actor,
        action=r.action, kind=r.kind, resource_id=r.resource_id, owner=r.owner, team=r.team,
        detail=json.loads(r.detail or "{}"),
    )  # fmt: skip
