"""Alembic migrations on SQLite and a real PostgreSQL: from empty, and from every
earlier revision to head (what a gateway or worker start does to an older store),
keeping the rows it finds."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from duratask.store.db import _alembic_config, create_engine, migrate
from duratask.store.definitions import DefinitionStore, content_hash
from duratask.store.tables import Base
from tests.helpers import definition


def revisions() -> list[str]:
    script = ScriptDirectory.from_config(_alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _upgrade_to(revision: str):  # type: ignore[no-untyped-def]
    def run(conn: Connection) -> None:
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)

    return run


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_from_empty_to_head_matches_the_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            tables = await conn.run_sync(_tables)
        assert set(Base.metadata.tables) <= tables
    finally:
        await engine.dispose()


@pytest.mark.parametrize("start", revisions()[:-1])
async def test_from_each_earlier_revision_to_head_keeps_definitions(
    db_url: str, start: str
) -> None:
    engine = create_engine(db_url)
    kept = definition([{"id": "a", "action": "llm_call", "prompt": "x"}], id="kept")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to(start))  # type: ignore[arg-type]
            # a definition as revision 0001's columns hold it (every later one keeps them)
            now = datetime.now(UTC)
            await conn.execute(
                text(
                    "INSERT INTO definitions (id, latest_version, created_at, updated_at)"
                    " VALUES ('kept', 1, :now, :now)"
                ),
                {"now": now},
            )
            await conn.execute(
                text(
                    "INSERT INTO definition_versions"
                    " (definition_id, version, body, content_hash, created_at, created_by)"
                    " VALUES ('kept', 1, :body, :hash, :now, 'ana')"
                ),
                {"body": json.dumps(kept.model_dump(mode="json", by_alias=True,
                                                     exclude_none=True)),
                 "hash": content_hash(kept), "now": now},
            )  # fmt: skip
        await migrate(engine)
        async with engine.connect() as conn:
            assert set(Base.metadata.tables) <= await conn.run_sync(_tables)
        store = DefinitionStore(engine)
        got = await store.get("kept")
        assert (got.version, got.definition.steps[0].prompt) == (1, "x")  # type: ignore[union-attr]
        again, created = await store.put(kept)
        assert (again.version, created) == (1, False)  # same content: no new version
        await store.put(definition([{"id": "a", "action": "llm_call", "prompt": "y"}], id="new"))
        assert (await store.get("new")).version == 1
    finally:
        await engine.dispose()
