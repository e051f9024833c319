"""The definition store against a real SQLite file (migrated by Alembic)."""

from collections.abc import AsyncIterator

import pytest

from duratask.store.db import create_engine, migrate
from duratask.store.definitions import DefinitionStore, NotFound
from tests.helpers import definition


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[DefinitionStore]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield DefinitionStore(engine)
    # disposed here, not by the garbage collector: that may run inside a later test's
    # workflow activation, whose event loop cannot take aiosqlite's callbacks
    await engine.dispose()


async def test_versions_are_immutable_and_only_made_on_change(store: DefinitionStore) -> None:
    d1 = definition([{"id": "a", "action": "llm_call", "prompt": "one"}], id="x")
    v1, created = await store.put(d1, created_by="ana")
    assert (v1.version, created) == (1, True)
    again, created = await store.put(d1)
    assert (again.version, created) == (1, False)
    d2 = definition([{"id": "a", "action": "llm_call", "prompt": "two"}], id="x")
    v2, created = await store.put(d2)
    assert (v2.version, created) == (2, True)
    old = await store.get("x", 1)
    assert old.definition.steps[0].prompt == "one"  # type: ignore[union-attr]
    assert (await store.get("x")).version == 2
    assert [v.version for v in await store.versions("x")] == [1, 2]


async def test_bundle_pins_referenced_definitions(store: DefinitionStore) -> None:
    child = definition([{"id": "c", "action": "llm_call", "prompt": "c"}], id="child")
    parent = definition([{"id": "p", "action": "sub_task", "task": "child"}], id="parent")
    await store.put(child)
    await store.put(parent)
    bundle = await store.bundle("parent")
    assert bundle.root.definition.id == "parent"
    assert set(bundle.others) == {"child"}


async def test_delete_hides_latest_but_keeps_versions(store: DefinitionStore) -> None:
    await store.put(definition([{"id": "a", "action": "llm_call", "prompt": "x"}], id="gone"))
    await store.delete("gone")
    with pytest.raises(NotFound):
        await store.get("gone")
    assert (await store.get("gone", 1)).version == 1
    assert (await store.list_latest())[1] == 0
