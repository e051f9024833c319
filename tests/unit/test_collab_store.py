"""Ratings, threads and handoffs in the store, on a real SQLite file migrated by Alembic;
and migrations 0003 and 0004 (up from 0002 keeping data, definitions getting their
owner, down again)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text

from duratask.store.collab import CollabStore
from duratask.store.db import _alembic_config, create_engine, migrate
from duratask.store.definitions import DefinitionStore
from tests.helpers import definition


@pytest.fixture
async def collab(db_url: str) -> AsyncIterator[CollabStore]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield CollabStore(engine)
    # disposed here, not by the garbage collector: that may run inside a later test's
    # workflow activation, whose event loop cannot take aiosqlite's callbacks
    await engine.dispose()


async def test_one_rating_per_identity_and_rerating_replaces(collab: CollabStore) -> None:
    first, created = await collab.rate("run-1", "ana", "up", "great", "greet")
    assert created and first.score == "up" and first.definition_id == "greet"
    await collab.rate("run-1", "bob", "down")
    again, created = await collab.rate("run-1", "ana", "down", "changed my mind")
    assert not created and again.score == "down" and again.created_at == first.created_at
    ratings = await collab.ratings("run-1")
    assert sorted((r.identity, r.score) for r in ratings) == [("ana", "down"), ("bob", "down")]
    assert await collab.ratings("run-2") == []
    assert await collab.unrate("run-1", "bob") is True
    assert await collab.unrate("run-1", "bob") is False
    assert [r.identity for r in await collab.ratings("run-1")] == ["ana"]


async def test_ratings_across_runs_by_definition_and_identity(collab: CollabStore) -> None:
    await collab.rate("run-1", "ana", "up", definition_id="greet")
    await collab.rate("run-2", "Ana", "down", definition_id="greet")
    await collab.rate("run-2", "bob", "up", definition_id="greet")
    await collab.rate("run-3", "bob", "down", definition_id="other")
    items, up, down = await collab.all_ratings(definition_id="greet")
    assert (up, down) == (2, 1)
    assert [(r.run_id, r.identity) for r in items] == [
        ("run-2", "bob"), ("run-2", "Ana"), ("run-1", "ana"),
    ]  # fmt: skip
    page, up, down = await collab.all_ratings(identity="ANA", limit=1, offset=1)
    assert [r.run_id for r in page] == ["run-1"] and (up, down) == (1, 1)
    assert (await collab.all_ratings(definition_id="none"))[1:] == (0, 0)


async def test_thread_is_chronological_and_paginated(collab: CollabStore) -> None:
    for i in range(5):
        await collab.add_comment("run-1", "ana", "comment", f"c{i}")
    await collab.add_comment("run-1", "bob", "note", "a note")
    await collab.add_comment("run-other", "ana", "comment", "elsewhere")
    page, cursor = await collab.comments("run-1", limit=4)
    assert [c.body for c in page] == ["c0", "c1", "c2", "c3"] and cursor is not None
    rest, cursor2 = await collab.comments("run-1", limit=4, after=cursor)
    assert [c.body for c in rest] == ["c4", "a note"] and cursor2 is None
    notes, _ = await collab.comments("run-1", kind="note")
    assert [(n.author, n.body) for n in notes] == [("bob", "a note")]


async def test_handoff_moves_the_assignee_and_lists_for_the_target(collab: CollabStore) -> None:
    assert await collab.assignee("run-1") is None
    h1 = await collab.add_comment("run-1", "ana", "handoff", "yours, Bob", to="Bob")
    assert h1.to == "Bob"
    assert (await collab.assignee("run-1")).assignee == "Bob"  # type: ignore[union-attr]
    await collab.add_comment("run-2", "ana", "handoff", "this too", to="bob")
    h3 = await collab.add_comment("run-1", "bob", "handoff", "over to Cy", to="cy")
    assignment = await collab.assignee("run-1")
    assert assignment is not None
    assert (assignment.assignee, assignment.assigned_by, assignment.comment_id) == (
        "cy", "bob", h3.id,
    )  # fmt: skip
    # a comment's `to` is ignored unless it is a handoff
    plain = await collab.add_comment("run-2", "ana", "comment", "fyi", to="zed")
    assert plain.to is None
    items, _ = await collab.handoffs("BOB")  # identities compare case-insensitively
    assert [(c.run_id, current) for c, current in items] == [("run-2", True), ("run-1", False)]
    current, _ = await collab.handoffs("bob", current_only=True)
    assert [c.run_id for c, _ in current] == ["run-2"]
    first, cursor = await collab.handoffs("bob", limit=1)
    older, end = await collab.handoffs("bob", limit=1, before=cursor)
    assert [c.run_id for c, _ in first + older] == ["run-2", "run-1"] and end is None
    assert (await collab.handoffs("zed"))[0] == []


async def test_summary_in_one_query(collab: CollabStore) -> None:
    empty = await collab.summary("run-1")
    assert empty.empty and (empty.up, empty.down, empty.comment_count) == (0, 0, 0)
    await collab.rate("run-1", "ana", "up")
    await collab.rate("run-1", "bob", "up")
    await collab.rate("run-1", "cy", "down")
    await collab.add_comment("run-1", "ana", "note", "n")
    await collab.add_comment("run-1", "ana", "handoff", "h", to="dee")
    s = await collab.summary("run-1")
    assert (s.up, s.down, s.comment_count, s.assignee) == (2, 1, 2, "dee")
    assert not s.empty


async def test_migration_0003_upgrades_an_0002_database_and_downgrades(db_url: str) -> None:
    engine = create_engine(db_url)

    def to(revision: str, down: bool = False) -> object:
        def run(conn: Connection) -> None:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            (command.downgrade if down else command.upgrade)(cfg, revision)

        return run

    def tables(conn: Connection) -> set[str]:
        return set(inspect(conn).get_table_names())

    async with engine.begin() as conn:
        await conn.run_sync(to("0002_schedules"))  # type: ignore[arg-type]
        assert "run_ratings" not in await conn.run_sync(tables)
    body = definition([{"id": "a", "action": "llm_call", "prompt": "x"}], id="kept")
    async with engine.begin() as conn:  # a definition saved by 'ana' before owners existed
        now = datetime(2026, 1, 1, tzinfo=UTC)
        await conn.execute(
            text("INSERT INTO definitions VALUES ('kept', 1, :now, :now, NULL)"), {"now": now}
        )
        await conn.execute(
            text("INSERT INTO definition_versions VALUES ('kept', 1, :b, :h, :now, 'ana')"),
            {"b": body.model_dump_json(by_alias=True, exclude_none=True), "h": "x", "now": now},
        )
    await migrate(engine)  # what the gateway does at start-up
    async with engine.connect() as conn:
        assert {"run_ratings", "run_comments", "run_assignees"} <= await conn.run_sync(tables)
    kept = await DefinitionStore(engine).get("kept")
    assert (kept.version, kept.owner, kept.team) == (1, "ana", None)  # 0004: owner from created_by
    async with engine.connect() as conn:
        assert "audit" in await conn.run_sync(tables)
    await CollabStore(engine).rate("run-1", "ana", "up")
    async with engine.begin() as conn:
        await conn.run_sync(to("0002_schedules", down=True))  # type: ignore[arg-type]
        left = await conn.run_sync(tables)
    assert not {"run_ratings", "run_comments", "run_assignees", "audit"} & left
    assert {"definitions", "schedules"} <= left
    await engine.dispose()
