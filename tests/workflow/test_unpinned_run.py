"""A run started without a bundle (a schedule following the latest version) resolves
the definition through the real store activity before its first step."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from duratask.settings import Settings
from duratask.store.db import create_engine, migrate
from duratask.store.definitions import DefinitionStore
from tests.databases import chosen_db_kind, new_database_url
from tests.helpers import definition, make_worker, start
from workflows import contracts
from workflows.models import RunInput, RunMeta, RunState, Trigger


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DefinitionStore]:
    engine = create_engine(new_database_url(chosen_db_kind(), tmp_path))
    await migrate(engine)
    yield DefinitionStore(engine)
    await engine.dispose()  # not left to the garbage collector (see tests/unit/test_store.py)


def unpinned(definition_id: str, **input: str) -> RunInput:
    return RunInput(
        definition_id=definition_id,
        input=input,
        meta=RunMeta(trigger=Trigger.schedule, schedule_id="sched-x"),
    )


async def test_latest_version_is_resolved_when_the_run_starts(
    ts_client: Client, task_queue: str, store: DefinitionStore
) -> None:
    greet = {"inputs": {"name": {"type": "string", "default": "you"}}, "id": "greet"}
    await store.put(definition([{"id": "a", "action": "llm_call", "prompt": "v1"}], **greet))
    await store.put(
        definition([{"id": "a", "action": "llm_call", "prompt": "v2 {{ input.name }}"}], **greet)
    )
    async with make_worker(ts_client, task_queue, store=store, settings=Settings()):
        handle = await start(ts_client, task_queue, unpinned("greet", name="Ada"))
        state: RunState = await handle.result()
    assert state.status == "completed"
    assert (state.definition_id, state.definition_version) == ("greet", 2)
    assert state.result == "v2 Ada"
    assert state.trigger == "schedule" and state.schedule_id == "sched-x"
    assert [s.id for s in state.steps] == ["a"]


async def test_a_deleted_definition_fails_the_run_clearly(
    ts_client: Client, task_queue: str, store: DefinitionStore
) -> None:
    await store.put(definition([{"id": "a", "action": "llm_call", "prompt": "x"}], id="gone"))
    await store.delete("gone")
    async with make_worker(ts_client, task_queue, store=store, settings=Settings()):
        handle = await start(ts_client, task_queue, unpinned("gone"))
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == contracts.E_DEFINITION_NOT_FOUND
    state = RunState.model_validate(cause.details[0])
    assert state.status == "failed" and state.error is not None
    assert "'gone' not found" in state.error.message
