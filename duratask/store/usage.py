"""Daily model usage per owner and per definition, for the daily budgets.

The run workflow records each model call's usage through an activity (a workflow does
no I/O) and gets back what the owner and the definition have used today (UTC), so it
can compare with the limits in its RunConfig. A call is recorded once whatever the
activity's retries: its key is the run's, the step's and the call's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from duratask.store.tables import UsageRow


class UsageStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def record(
        self,
        key: str,
        run_id: str,
        owner: str | None,
        definition_id: str,
        tokens: int,
        cost_usd: float,
        at: datetime | None = None,
    ) -> str:
        """Record one call (again: nothing changes); returns its day."""
        at = at or datetime.now(UTC)
        day = at.astimezone(UTC).date().isoformat()
        row = UsageRow(
            key=key, day=day, owner=owner, definition_id=definition_id, run_id=run_id,
            tokens=tokens, cost_usd=cost_usd, at=at,
        )  # fmt: skip
        try:
            async with self.sessions.begin() as s:
                s.add(row)
        except IntegrityError:
            async with self.sessions() as s:
                found = await s.get(UsageRow, key)
                if found is not None:
                    day = found.day
        return day

    async def totals(self, day: str, **where: str | None) -> tuple[int, float]:
        """(tokens, cost) used on `day` by `owner=` or `definition_id=`."""
        ((column, value),) = where.items()
        q = select(
            func.coalesce(func.sum(UsageRow.tokens), 0),
            func.coalesce(func.sum(UsageRow.cost_usd), 0.0),
        ).where(UsageRow.day == day, getattr(UsageRow, column) == value)
        async with self.sessions() as s:
            tokens, cost = (await s.execute(q)).one()
        return int(tokens), round(float(cost), 8)
