"""The live relay: token deltas from a worker's model call to the gateways, outside history.

A run's durable events live in its Workflow Stream, where every publish is a signal and
every subscriber poll an update: history events (and billed actions on Temporal Cloud).
The model's text as it is written is worth seeing live and worthless once the call has
answered (the answer is in `llm.completed` and the step's output), so it does not go
there. The LLM activity appends coalesced `llm.delta` / `llm.retry` items here, a shared
table both processes already reach; a gateway with clients on the run reads the new
rows every few tens of milliseconds and merges them into the run's feed. Rows are
pruned after `ttl_s`: nothing here is meant to last.

A streaming model call writes a batch every 200 ms, and each write's latency is part
of what a watcher sees as lag. On SQLite a call holds one connection for its writes
(`writer()`) rather than opening one per batch: the worker's engine keeps no pool, and
a new SQLite connection is a new thread (20 ms or more on a loaded machine). On
PostgreSQL each batch still takes a connection of its own, so a worker streaming many
calls at once never holds a server connection per call; a write there does not wait
for its WAL flush (`synchronous_commit` off for that transaction only): a crash can
lose the last instant of live text, never the store.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from duratask.store.tables import StreamDeltaRow


class DeltaRelay:
    def __init__(self, engine: AsyncEngine, ttl_s: float = 600.0) -> None:
        self.engine = engine
        self.ttl = timedelta(seconds=ttl_s)

    async def append(self, run_id: str, items: list[dict[str, Any]]) -> None:
        """Add items (wire-shaped dicts) for `run_id`, in order."""
        if items:
            async with self.engine.connect() as conn:
                await _insert(conn, run_id, items)

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[RelayWriter]:
        """The appends of one streaming model call (on SQLite, through one connection)."""
        if self.engine.dialect.name != "sqlite":
            yield RelayWriter(self, None)
            return
        async with self.engine.connect() as conn:
            yield RelayWriter(self, conn)

    async def last_id(self, run_id: str) -> int:
        """The newest row id of `run_id` (0 when none): where a new reader starts."""
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                select(func.max(StreamDeltaRow.id)).where(StreamDeltaRow.run_id == run_id)
            )
        return int(found or 0)

    async def after(self, run_id: str, after_id: int) -> list[tuple[int, dict[str, Any]]]:
        """The items of `run_id` written after row `after_id`, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(StreamDeltaRow.id, StreamDeltaRow.body)
                .where(StreamDeltaRow.run_id == run_id, StreamDeltaRow.id > after_id)
                .order_by(StreamDeltaRow.id)
            )
            return [(int(r.id), json.loads(r.body)) for r in rows]

    async def prune(self) -> int:
        """Drop rows older than the relay's time to live; returns how many."""
        cutoff = datetime.now(UTC) - self.ttl
        async with self.engine.begin() as conn:
            result = await conn.execute(
                delete(StreamDeltaRow).where(StreamDeltaRow.created_at < cutoff)
            )
        return int(result.rowcount or 0)


class RelayWriter:
    """Appends through one held connection (it holds no lock between appends), or, with
    none, each through a connection of its own."""

    def __init__(self, relay: DeltaRelay, conn: AsyncConnection | None) -> None:
        self.relay = relay
        self.conn = conn

    async def append(self, run_id: str, items: list[dict[str, Any]]) -> None:
        if self.conn is None:
            await self.relay.append(run_id, items)
        elif items:
            await _insert(self.conn, run_id, items)


async def _insert(conn: AsyncConnection, run_id: str, items: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    rows = [
        {"run_id": run_id, "body": json.dumps(item, default=str), "created_at": now}
        for item in items
    ]
    async with conn.begin():
        if conn.dialect.name == "postgresql":  # live-only rows: no wait for the WAL flush
            await conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
        await conn.execute(insert(StreamDeltaRow), rows)
