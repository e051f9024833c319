"""Every way a run starts builds its RunConfig the same way, from the settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.runs_service import RunService
from duratask.access import SYSTEM
from duratask.schedules.models import ScheduleConfig
from duratask.schedules.service import ScheduleService
from duratask.settings import Settings
from duratask.store.db import create_engine, migrate
from duratask.store.definitions import DefinitionStore
from tests.helpers import definition


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DefinitionStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    await migrate(engine)
    yield DefinitionStore(engine)
    await engine.dispose()


def _settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        agent_continue_as_new_after_turns=7,
        agent_drift_after_turns=5,
        max_output_bytes=12_345,
        max_subtask_depth=3,
    )


@pytest.mark.parametrize("pinned", [True, False])
async def test_scheduled_runs_get_the_same_config_as_api_runs(
    store: DefinitionStore, pinned: bool
) -> None:
    settings = _settings()
    await store.put(definition([{"id": "a", "action": "llm_call", "prompt": "hi"}], id="daily"))
    # neither service talks to Temporal to build a run's input: no client is needed
    schedules = ScheduleService(None, store, settings, SYSTEM)  # type: ignore[arg-type]
    api = RunService(None, store, settings, SYSTEM)  # type: ignore[arg-type]
    cfg = ScheduleConfig(definition_id="daily", version=1 if pinned else None, cron="0 9 * * *")
    inp = await schedules._run_input("sched-daily", cfg, "ana")
    assert inp.config == api.run_config()
    assert inp.config.continue_as_new_after_turns == 7
    assert inp.config.drift_after_turns == 5
    assert inp.config.max_output_bytes == 12_345
