"""Per-endpoint model rate limits that hold across every worker: slots in the shared store.

A model endpoint's `requests_per_minute` / `tokens_per_minute` are the provider's limits
for the whole deployment, not per worker, and Temporal's task-queue rate limits count
activities, not tokens, and not per endpoint. So every LLM activity takes a slot here
before it calls: under a lock on the endpoint's row (an UPDATE, which serialises writers
on SQLite and PostgreSQL alike) it reads the calls of the last minute and places its own
at the earliest time that keeps any 60-second window within both limits, behind every
slot already handed out (first come, first served). A slot in the future is a
reservation: the caller waits for it (the workflow with a durable timer, or the activity
itself for a short wait), then claims it, which moves it to when the call really starts.
A call's tokens are an estimate (prompt and `max_tokens`) until it answers, then its
real usage. A call bigger than the whole token limit goes alone in its window.

Times are epoch seconds from the workers' clocks: workers sharing a limit need clocks
that agree (NTP), as any distributed rate limit does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duratask.store.tables import RateLimitCallRow, RateLimitLockRow

WINDOW_S = 60.0
REQUESTS = "requests_per_minute"
TOKENS = "tokens_per_minute"


@dataclass(frozen=True)
class Slot:
    id: int
    at: float  # epoch seconds the call may start
    limit: str | None  # the limit that put it in the future (None: it may start now)


def place(
    calls: list[tuple[float, int]],
    now: float,
    requests: int | None,
    tokens: int | None,
    need: int,
    window: float = WINDOW_S,
) -> tuple[float, str | None]:
    """The earliest start at or after `now` for a call of `need` tokens, given the
    endpoint's `calls` (start, tokens) of the last window and later, oldest first."""
    at, why = now, None
    if calls and calls[-1][0] > at:  # behind the reservations already handed out
        at = calls[-1][0]
    if requests and len(calls) >= requests:
        edge = calls[len(calls) - requests][0] + window
        if edge > at:
            at, why = edge, REQUESTS
    if tokens:
        inside = [c for c in calls if c[0] > at - window]
        total = sum(t for _, t in inside)
        wanted = min(need, tokens)
        for start, used in inside:
            if total + wanted <= tokens:
                break
            total -= used
            if start + window > at:
                at, why = start + window, TOKENS
    if at > now and why is None:  # queued behind calls that waited for a limit
        why = REQUESTS if requests else TOKENS
    return at, why


class RateLimiter:
    def __init__(self, engine: AsyncEngine, window_s: float = WINDOW_S) -> None:
        self.engine = engine
        self.window = window_s
        self._known: set[str] = set()

    async def _ensure(self, endpoint: str) -> None:
        if endpoint in self._known:
            return
        try:
            async with self.engine.begin() as conn:
                found = await conn.scalar(
                    select(RateLimitLockRow.endpoint).where(RateLimitLockRow.endpoint == endpoint)
                )
                if found is None:
                    await conn.execute(
                        insert(RateLimitLockRow).values(endpoint=endpoint, version=0)
                    )
        except IntegrityError:
            pass  # another worker created it first
        self._known.add(endpoint)

    async def _lock(self, conn: AsyncConnection, endpoint: str) -> None:
        await conn.execute(
            update(RateLimitLockRow)
            .where(RateLimitLockRow.endpoint == endpoint)
            .values(version=RateLimitLockRow.version + 1)
        )

    async def reserve(
        self,
        endpoint: str,
        requests: int | None,
        tokens: int | None,
        need: int,
        now: float | None = None,
    ) -> Slot:
        """A slot for one call of about `need` tokens (its start may be in the future)."""
        await self._ensure(endpoint)
        now = time.time() if now is None else now
        c = RateLimitCallRow
        async with self.engine.begin() as conn:
            await self._lock(conn, endpoint)
            await conn.execute(
                delete(c).where(c.endpoint == endpoint, c.at < now - 2 * self.window)
            )
            rows = await conn.execute(
                select(c.at, c.tokens)
                .where(c.endpoint == endpoint, c.at > now - self.window)
                .order_by(c.at, c.id)
            )
            calls = [(float(r.at), int(r.tokens)) for r in rows]
            at, why = place(calls, now, requests, tokens, need, self.window)
            result = await conn.execute(
                insert(c).values(endpoint=endpoint, at=at, tokens=need, claimed=False)
            )
            slot_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
        assert slot_id is not None, "the store gave the new slot no id"
        return Slot(int(slot_id), at, why)

    async def claim(self, slot_id: int, endpoint: str, now: float | None = None) -> float | None:
        """Take a reserved slot for the call starting now: its start moves to now when that
        is later. Returns the slot's start, or None when it is unknown or already taken."""
        now = time.time() if now is None else now
        c = RateLimitCallRow
        async with self.engine.begin() as conn:
            await self._lock(conn, endpoint)
            at = await conn.scalar(select(c.at).where(c.id == slot_id, c.claimed.is_(False)))
            if at is None:
                return None
            start = max(float(at), now)
            await conn.execute(update(c).where(c.id == slot_id).values(claimed=True, at=start))
        return float(at)

    async def settle(self, slot_id: int, tokens: int) -> None:
        """The call answered (or failed): count what it really used."""
        c = RateLimitCallRow
        async with self.engine.begin() as conn:
            await conn.execute(update(c).where(c.id == slot_id).values(tokens=tokens))

    async def release(self, slot_id: int) -> None:
        """Give back a slot never used (the call was cancelled while it waited)."""
        c = RateLimitCallRow
        async with self.engine.begin() as conn:
            await conn.execute(delete(c).where(c.id == slot_id, c.claimed.is_(False)))
