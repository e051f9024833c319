"""Which delivered links were used: a link decides once (duratask/links.py).

Claiming is one INSERT on the link id (its primary key), so two requests racing with
the same link cannot both pass, on SQLite and on PostgreSQL alike. A claim whose
decision the run refused (a value to correct, an outage) is released, so the person
can try again with the same link; one the run counted stays.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from duratask.links import Link
from duratask.store.tables import UsedLinkRow


class UsedLinks:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def used(self, link_id: str) -> bool:
        async with self.sessions() as s:
            return await s.get(UsedLinkRow, link_id) is not None

    async def claim(self, link: Link) -> bool:
        """Mark `link` used; False when it already was."""
        now = datetime.now(UTC)
        row = UsedLinkRow(
            link_id=link.id, run_id=link.run_id, step_id=link.step_id,
            recipient=link.recipient, used_at=now, expires_at=link.expires_at,
        )  # fmt: skip
        try:
            async with self.sessions.begin() as s:
                s.add(row)
        except IntegrityError:
            return False
        await self.prune(now)
        return True

    async def release(self, link_id: str) -> None:
        async with self.sessions.begin() as s:
            await s.execute(delete(UsedLinkRow).where(UsedLinkRow.link_id == link_id))

    async def prune(self, now: datetime) -> int:
        """Forget links past their expiry (they are refused as expired anyway)."""
        async with self.sessions.begin() as s:
            gone = await s.execute(delete(UsedLinkRow).where(UsedLinkRow.expires_at < now))
        return int(getattr(gone, "rowcount", 0) or 0)

    async def count(self) -> int:
        async with self.sessions() as s:
            return len((await s.execute(select(UsedLinkRow.link_id))).all())
