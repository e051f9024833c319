"""duratask's index of its schedules, and the scheduling switch, in the SQL store.

Temporal holds each schedule's state and actions; this table says which schedules are
duratask's, who owns them, where they came from (api / sync / tool), their config as
the user gave it, and whether the global switch paused them. Being strongly
consistent (unlike Temporal's schedule listing), it is what sync and the switch read.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from duratask.store.tables import FlagRow, ScheduleRow

ENABLED_FLAG = "scheduling_enabled"


class ScheduleStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def get(self, schedule_id: str) -> ScheduleRow | None:
        async with self.sessions() as s:
            return await s.get(ScheduleRow, schedule_id)

    async def list(self, owner: str | None = None, source: str | None = None) -> list[ScheduleRow]:
        q = select(ScheduleRow).order_by(ScheduleRow.id)
        if owner is not None:
            q = q.where(ScheduleRow.owner == owner)
        if source is not None:
            q = q.where(ScheduleRow.source == source)
        async with self.sessions() as s:
            return list((await s.execute(q)).scalars())

    async def insert(self, row: ScheduleRow) -> bool:
        """False if the id is taken."""
        async with self.sessions.begin() as s:
            if await s.get(ScheduleRow, row.id) is not None:
                return False
            s.add(row)
        return True

    async def update(self, schedule_id: str, **values: object) -> None:
        async with self.sessions.begin() as s:
            row = await s.get(ScheduleRow, schedule_id)
            if row is not None:
                for k, v in values.items():
                    setattr(row, k, v)
                row.updated_at = datetime.now(UTC)

    async def delete(self, schedule_id: str) -> None:
        async with self.sessions.begin() as s:
            row = await s.get(ScheduleRow, schedule_id)
            if row is not None:
                await s.delete(row)

    async def enabled(self) -> bool:
        async with self.sessions() as s:
            row = await s.get(FlagRow, ENABLED_FLAG)
            return row is None or row.value == "true"

    async def set_enabled(self, enabled: bool) -> None:
        async with self.sessions.begin() as s:
            row = await s.get(FlagRow, ENABLED_FLAG)
            if row is None:
                s.add(FlagRow(key=ENABLED_FLAG, value=str(enabled).lower()))
            else:
                row.value = str(enabled).lower()
