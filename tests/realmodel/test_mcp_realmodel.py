"""A real local model drives MCP tools over stdio and HTTP (the real-model tier).

Skipped unless `DURATASK_REALMODEL_BASE_URL` names an OpenAI-compatible server (vLLM,
llama.cpp server, Ollama...) serving `DURATASK_REALMODEL_MODEL` with tool calling.
The model must call `mcp__local__echo` and `mcp__remote__remember` (the names it is
shown) and then answer; the effect is counted at the MCP server.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import Client

from duratask.settings import OpenAISettings, Settings
from tests.fakes.mcp_servers import counts
from tests.helpers import definition, make_worker, run_input, start
from tests.mcp_support import http_server, stdio_server
from workflows.models import RunState

BASE_URL = os.environ.get("DURATASK_REALMODEL_BASE_URL")
MODEL = os.environ.get("DURATASK_REALMODEL_MODEL", "")
pytestmark = pytest.mark.skipif(not BASE_URL, reason="no real model: set DURATASK_REALMODEL_*")


@pytest.fixture
async def settings(tmp_path: Path) -> AsyncIterator[Settings]:
    async with http_server(tmp_path / "remote") as remote:
        yield Settings(
            openai=OpenAISettings(base_url=BASE_URL, api_key=SecretStr("local"), timeout_s=300),
            mcp_servers={"local": stdio_server(tmp_path / "local"), "remote": remote},
            _env_file=None,  # type: ignore[call-arg]
        )


async def test_real_model_uses_mcp_tools(
    dev_client: Client, task_queue: str, settings: Settings, tmp_path: Path
) -> None:
    defn = definition(
        [{"id": "agent", "action": "llm_call", "max_steps": 6,
          "model": {"provider": "openai", "name": MODEL, "temperature": 0},
          "prompt": "First call the echo tool with text 'hello'. Then call the remember "
                    "tool with note 'milk'. Then reply with exactly what echo returned."}],
        tools=["mcp:local/echo", "mcp:remote/remember"],
    )  # fmt: skip
    async with make_worker(dev_client, task_queue, settings=settings):
        handle = await start(dev_client, task_queue, run_input(defn))
        state: RunState = await handle.result()
    assert state.status == "completed"
    tools = [m.name for m in state.step("agent").conversation if m.role == "tool"]
    assert "mcp:local/echo" in tools or "mcp__local__echo" in tools
    assert list(counts(tmp_path / "remote", "effects.log").values()) == [1]
    assert "HELLO" in str(state.result).upper()
