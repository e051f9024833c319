"""The token relay's store table on SQLite and PostgreSQL: a streaming call's writer
(on SQLite one held connection) and single appends read back in order, and a reader
never sees another run's rows."""

from __future__ import annotations

from duratask.store.db import create_engine, migrate
from duratask.store.deltas import DeltaRelay


async def test_held_writer_and_single_appends_read_back_in_order(db_url: str) -> None:
    engine = create_engine(db_url)
    await migrate(engine)
    relay = DeltaRelay(engine)
    try:
        async with relay.writer() as writer:
            # SQLite: one connection (a thread) for the call; PostgreSQL: one per batch
            assert (writer.conn is not None) == (engine.dialect.name == "sqlite")
            await writer.append("run-a", [{"type": "llm.delta", "n": 1}])
            await writer.append("run-b", [{"type": "llm.delta", "n": 99}])
            await writer.append("run-a", [{"type": "llm.delta", "n": 2}, {"n": 3}])
            await writer.append("run-a", [])  # nothing to write: no row
        await relay.append("run-a", [{"type": "llm.delta", "n": 4}])
        rows = await relay.after("run-a", 0)
        assert [item["n"] for _, item in rows] == [1, 2, 3, 4]
        ids = [row_id for row_id, _ in rows]
        assert ids == sorted(ids)
        assert [item["n"] for _, item in await relay.after("run-a", ids[1])] == [3, 4]
        assert await relay.last_id("run-a") == ids[-1]
        assert [item["n"] for _, item in await relay.after("run-b", 0)] == [99]
    finally:
        await engine.dispose()
