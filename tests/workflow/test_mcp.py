"""MCP tools in an agent run, against real MCP servers (tests/fakes/mcp_servers.py,
the SDK's MCPServer) over stdio and streamable HTTP: results reach the model, a tool
error is something the model reads, and a worker lost mid-call finishes the run with
the side effect done once (counted at the server, by idempotency key)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from duratask.settings import McpServerSettings, Settings
from tests.fakes.mcp_servers import counts
from tests.helpers import definition, make_worker, run_input, start
from tests.mcp_support import free_port, http_server, stdio_server
from workflows import contracts
from workflows.models import RunInput, RunState
from workflows.run_workflow import TaskRunWorkflow

FAST_RETRY = {"max_attempts": 5, "initial_interval": 0.1, "max_interval": 0.5}


@pytest.fixture
async def mcp_settings(tmp_path: Path) -> AsyncIterator[Settings]:
    async with http_server(tmp_path / "remote") as remote:
        yield Settings(
            mcp_servers={"local": stdio_server(tmp_path / "local"), "remote": remote},
            shutdown_grace_s=0.5,
            _env_file=None,  # type: ignore[call-arg]
        )


def agent(script: list[Any], tools: list[str], **step: Any) -> RunInput:
    defn = definition(
        [{"id": "agent", "action": "llm_call", "prompt": "Use the tools.", "retry": FAST_RETRY,
          "model": {"provider": "scripted", "name": "script", "script": script}, **step}],
        tools=tools,
    )  # fmt: skip
    return run_input(defn)


def call(name: str, id: str, **args: Any) -> dict[str, Any]:
    return {"id": id, "name": name, "arguments": args}


async def scheduled(handle: WorkflowHandle[Any, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(activity type, summary, input) of every activity the run scheduled."""
    out = []
    async for ev in handle.fetch_history_events():
        if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = ev.activity_task_scheduled_event_attributes
            summary = (
                json.loads(ev.user_metadata.summary.data) if ev.user_metadata.summary.data else ""
            )
            out.append(
                (attrs.activity_type.name, summary, json.loads(attrs.input.payloads[0].data))
            )
    return out


def tool_messages(state: RunState) -> list[str]:
    return [m.content or "" for m in state.step("agent").conversation if m.role == "tool"]


async def test_agent_calls_stdio_and_http_mcp_tools(
    dev_client: Client, task_queue: str, mcp_settings: Settings, tmp_path: Path
) -> None:
    script = [
        # one by its definition name, one by the name the model is shown
        {
            "tool_calls": [
                call("mcp:local/echo", "a", text="hello"),
                call("mcp__remote__remember", "b", note="milk"),
            ]
        },
        {"text": "done"},
    ]
    inp = agent(script, ["mcp:local/*", "mcp:remote/remember"])
    async with make_worker(dev_client, task_queue, settings=mcp_settings):
        handle = await start(dev_client, task_queue, inp)
        state: RunState = await handle.result()
    assert state.result == "done"
    # the results reached the model
    assert tool_messages(state) == [
        json.dumps({"echo": "HELLO"}),
        json.dumps({"result": "remembered: milk"}),
    ]
    # the pinned tools: all of `local`, only `remember` of `remote`, listed once per server
    pinned = {t.name for t in state.mcp_tools}
    assert {"mcp:local/echo", "mcp:local/fail", "mcp:remote/remember"} <= pinned
    assert "mcp:remote/echo" not in pinned
    acts = await scheduled(handle)
    lists = [a for a in acts if a[0] == contracts.MCP_LIST_ACTIVITY]
    assert len(lists) == 1 and lists[0][2]["servers"] == ["local", "remote"]
    # the model was offered exactly the allowed ones, by model-safe names, in every turn
    llm = [a[2] for a in acts if a[0] == contracts.LLM_ACTIVITY]
    assert len(llm) == 2
    for req in llm:
        offered = {s["model_name"] for s in req["tool_specs"]}
        assert "mcp__remote__remember" in offered and "mcp__local__echo" in offered
        assert "mcp__remote__echo" not in offered
    summaries = sorted(a[1] for a in acts if a[0] == contracts.TOOL_ACTIVITY)
    assert summaries == ["agent: mcp:local/echo", "agent: mcp:remote/remember"]
    # the side effect happened once, under the run's idempotency key
    effects = counts(tmp_path / "remote", "effects.log")
    assert list(effects.values()) == [1] and next(iter(effects)).startswith(handle.id + "/agent/")


async def test_mcp_tool_error_reaches_the_model(
    dev_client: Client, task_queue: str, mcp_settings: Settings
) -> None:
    script = [
        {"tool_calls": [call("mcp:local/fail", "a", reason="disk full")]},
        {"tool_calls": [call("mcp:local/nope", "b")]},  # not offered: refused in the run
        {"text": "recovered"},
    ]
    async with make_worker(dev_client, task_queue, settings=mcp_settings):
        handle = await start(dev_client, task_queue, agent(script, ["mcp:local/fail"]))
        state: RunState = await handle.result()
    assert state.result == "recovered"
    first, second = (json.loads(m) for m in tool_messages(state))
    assert "cannot do it: disk full" in first["error"]
    assert "not allowed" in second["error"]
    attempts = [a for a in await scheduled(handle) if a[0] == contracts.TOOL_ACTIVITY]
    assert len(attempts) == 1  # a tool error is an answer, not a retry


async def test_worker_lost_during_mcp_call_does_the_effect_once(
    dev_client: Client, task_queue: str, mcp_settings: Settings, tmp_path: Path
) -> None:
    script = [
        {"tool_calls": [call("mcp:remote/remember", "a", note="slow write")]},
        {"text": "survived"},
    ]
    effects_dir = tmp_path / "remote"
    async with make_worker(dev_client, task_queue, settings=mcp_settings):
        handle = await start(dev_client, task_queue, agent(script, ["mcp:remote/*"]))
        for _ in range(600):  # the call is in flight at the server
            if counts(effects_dir, "attempts.log"):
                break
            await asyncio.sleep(0.05)
        assert counts(effects_dir, "effects.log")
    # the worker is gone mid-call; a new one retries the call with the same key
    async with make_worker(dev_client, task_queue, settings=mcp_settings):
        state: RunState = await asyncio.wait_for(handle.result(), 120)
    assert state.result == "survived"
    attempts = counts(effects_dir, "attempts.log")
    effects = counts(effects_dir, "effects.log")
    assert len(effects) == 1 and list(effects.values()) == [1]
    assert attempts == {next(iter(effects)): attempts[next(iter(effects))]}
    assert list(attempts.values())[0] >= 2  # it really was called again
    assert tool_messages(state) == [json.dumps({"result": "remembered: slow write"})]


def test_saved_mcp_history_is_an_mcp_run() -> None:
    """tests/histories/mcp_agent.json (replayed by test_replay.py) lists once, calls the
    pinned tool by its definition name, and completes."""
    from temporalio.client import WorkflowHistory

    path = Path(__file__).parent.parent / "histories" / "mcp_agent.json"
    history = WorkflowHistory.from_json("run-mcp_agent", path.read_text())
    types, tools = [], []
    for ev in history.events:
        if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = ev.activity_task_scheduled_event_attributes
            types.append(attrs.activity_type.name)
            if attrs.activity_type.name == contracts.TOOL_ACTIVITY:
                tools.append(json.loads(attrs.input.payloads[0].data)["tool"])
    assert types.count(contracts.MCP_LIST_ACTIVITY) == 1
    assert tools == ["mcp:notes/remember"]
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


def process_gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" in status.read_text()
    except FileNotFoundError:
        return True


async def test_cancelled_run_closes_the_mcp_session(
    dev_client: Client, task_queue: str, mcp_settings: Settings, tmp_path: Path
) -> None:
    script = [{"tool_calls": [call("mcp:local/remember", "a", note="slow forever")]},
              {"text": "never"}]  # fmt: skip
    effects_dir = tmp_path / "local"
    async with make_worker(dev_client, task_queue, settings=mcp_settings):
        handle = await start(dev_client, task_queue, agent(script, ["mcp:local/remember"]))
        pid_file = effects_dir / "server.pid"
        for _ in range(1200):  # the stdio server is in the slow call (and wrote its pid)
            if pid_file.exists() and pid_file.read_text().strip():
                break
            await asyncio.sleep(0.05)
        pid = int(pid_file.read_text())
        assert not process_gone(pid)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        for _ in range(600):  # the session is closed: the server process has ended
            if process_gone(pid):
                break
            await asyncio.sleep(0.05)
        assert process_gone(pid)
        state = await handle.query(TaskRunWorkflow.state)
    assert state.status == "cancelled"


async def test_unreachable_server_is_retried_with_the_step_policy(
    dev_client: Client, task_queue: str, tmp_path: Path
) -> None:
    """A transport failure is not a tool answer: the step's retry policy applies, and the
    run goes on once the server is up."""
    port = free_port()
    down = McpServerSettings(transport="http", url=f"http://127.0.0.1:{port}/mcp",
                             allow_private=True)  # fmt: skip
    settings = Settings(mcp_servers={"late": down}, _env_file=None)  # type: ignore[call-arg]
    script = [{"tool_calls": [call("mcp:late/echo", "a", text="up")]}, {"text": "done"}]
    retry = {"max_attempts": 60, "initial_interval": 0.2, "max_interval": 0.5}
    async with make_worker(dev_client, task_queue, settings=settings):
        handle = await start(dev_client, task_queue, agent(script, ["mcp:late/echo"], retry=retry))
        for _ in range(600):  # the listing failed at least once
            desc = await handle.describe()
            if any(pa.attempt >= 2 for pa in desc.raw_description.pending_activities):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the listing was never retried")
        async with http_server(tmp_path / "late", port=port):
            state: RunState = await asyncio.wait_for(handle.result(), 60)
    assert state.result == "done"
    assert tool_messages(state) == [json.dumps({"echo": "UP"})]


async def test_a_call_that_times_out_is_retried_with_the_same_key(
    dev_client: Client, task_queue: str, mcp_settings: Settings, tmp_path: Path
) -> None:
    remote = mcp_settings.mcp_servers["remote"].model_copy(update={"timeout_s": 2.0})
    settings = mcp_settings.model_copy(
        update={"mcp_servers": {**mcp_settings.mcp_servers, "remote": remote}}
    )
    script = [{"tool_calls": [call("mcp:remote/remember", "a", note="slow reply")]},
              {"text": "ok"}]  # fmt: skip
    async with make_worker(dev_client, task_queue, settings=settings):
        handle = await start(dev_client, task_queue, agent(script, ["mcp:remote/remember"]))
        state: RunState = await asyncio.wait_for(handle.result(), 90)
    assert state.result == "ok"
    attempts = counts(tmp_path / "remote", "attempts.log")
    effects = counts(tmp_path / "remote", "effects.log")
    assert list(effects.values()) == [1] and list(attempts.values())[0] >= 2
    assert attempts.keys() == effects.keys()
