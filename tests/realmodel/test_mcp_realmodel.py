"""The real local model (SmolLM2 on llama.cpp, function calling on) drives MCP tools
from real MCP servers: one over stdio, one over streamable HTTP.

A 135M model rarely picks a tool by itself, so each step forces its tool with
`tool_choice` (as the other tests of this tier do): the model's call goes to the MCP
server as an activity, its result goes back to the model in a `tool` message, and the
step stops at `max_steps` (the forced model keeps asking for the tool). The side
effect is counted at the MCP server: once per call, whatever the retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError

from duratask.settings import ModelEndpoint, Settings
from tests.fakes.mcp_servers import counts
from tests.helpers import definition, make_worker, run_input, start
from tests.mcp_support import http_server, stdio_server
from tests.realmodel.server import LlamaServer
from workflows.models import RunState
from workflows.run_workflow import TaskRunWorkflow


@pytest.fixture
async def settings(tmp_path: Path, fc_server: LlamaServer) -> AsyncIterator[Settings]:
    async with http_server(tmp_path / "remote") as remote:
        yield Settings(
            model_endpoints={
                "tools": ModelEndpoint(
                    kind="openai", base_url=fc_server.url, default_model="smollm2"
                )
            },
            default_endpoint="tools",
            mcp_servers={"local": stdio_server(tmp_path / "local"), "remote": remote},
            _env_file=None,  # type: ignore[call-arg]
        )


def forced(step_id: str, tool: str, prompt: str) -> dict[str, Any]:
    return {
        "id": step_id, "action": "llm_call", "prompt": prompt, "max_steps": 2,
        "model": {"endpoint": "tools", "max_tokens": 64, "temperature": 0,
                  "options": {"tool_choice": {"type": "function", "function": {"name": tool}}}},
    }  # fmt: skip


async def run_step(client: Client, task_queue: str, settings: Settings, step: dict[str, Any],
                   tools: list[str]) -> RunState:  # fmt: skip
    defn = definition([step], tools=tools)
    async with make_worker(client, task_queue, settings=settings):
        handle = await start(client, task_queue, run_input(defn))
        try:
            await handle.result()
        except WorkflowFailureError:
            pass  # the forced model never stops asking: MAX_STEPS_EXCEEDED, checked below
        state: RunState = await handle.query(TaskRunWorkflow.state)
    return state


def tool_messages(state: RunState) -> list[Any]:
    return [m for m in state.steps[0].conversation if m.role == "tool"]


async def test_real_model_calls_an_mcp_tool_over_stdio(
    dev_client: Client, task_queue: str, settings: Settings
) -> None:
    step = forced("echo", "mcp__local__echo", "Call the echo tool with the text 'hello'.")
    state = await run_step(dev_client, task_queue, settings, step, ["mcp:local/echo"])
    assert state.error is not None and state.error.code == "MAX_STEPS_EXCEEDED", state.error
    results = tool_messages(state)
    assert results, state.steps[0].conversation
    # the MCP server's answer (upper-cased echo) went back to the model, tied to its call;
    # a later call the small model makes with bad arguments comes back as a tool error
    assert all(m.tool_call_id for m in results), results
    assert '"echo"' in (results[0].content or ""), results


async def test_real_model_calls_an_mcp_tool_over_http_once_per_call(
    dev_client: Client, task_queue: str, settings: Settings, tmp_path: Path
) -> None:
    step = forced("note", "mcp__remote__remember", "Remember the note 'milk'.")
    state = await run_step(dev_client, task_queue, settings, step, ["mcp:remote/*"])
    results = tool_messages(state)
    done = [m for m in results if "remembered" in (m.content or "")]
    assert done, results
    effects = counts(tmp_path / "remote", "effects.log")
    # one effect per call that went through, keyed by its idempotency key
    assert len(effects) == len(done) and set(effects.values()) == {1}, effects
