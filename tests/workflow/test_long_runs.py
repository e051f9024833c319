"""Interpreted runs continue as new between steps once their history is long.

The threshold is forced down to one event so every step after the first of an
execution starts a new one: outputs, `limits.max_steps`, the state's output budget and
the event stream must all come along (time-skipping server, real LLM activity on the
offline `scripted` model, the real tool activity with the test tools).
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.worker import Replayer

from duratask.settings import Settings
from tests.helpers import definition, make_worker, run_input, start
from tests.workflow.test_interpreter import failure
from workflows import contracts, tracker
from workflows.models import RunInput, RunState
from workflows.run_workflow import TaskRunWorkflow

SETTINGS = Settings(_env_file=None, tool_modules=["tests.fakes.tools"])  # type: ignore[call-arg]


def every_step(inp: RunInput) -> RunInput:
    inp.config.continue_as_new_history_events = 1
    return inp


async def replays(handle: WorkflowHandle[Any, Any]) -> None:
    replayer = Replayer(workflows=[TaskRunWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(await handle.fetch_history())


async def test_steps_continue_as_new_carrying_outputs(ts_client: Client, task_queue: str) -> None:
    defn = definition(
        [
            {"id": "a", "action": "llm_call", "prompt": "one"},
            {"id": "b", "action": "tool_call", "tool": "add", "args": {"a": 1, "b": 2}},
            {"id": "c", "action": "llm_call", "prompt": "{{ steps.a.output }} {{ steps.b.output.sum }}"},
            {"id": "d", "action": "conditional", "condition": "steps.b.output.sum == 3",
             "then": "e", "else": "end"},
            {"id": "e", "action": "llm_call", "prompt": "done after {{ steps.c.output }}"},
        ],
        tools=["add"],
    )  # fmt: skip
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, every_step(run_input(defn)))
        state: RunState = await handle.result()
    assert state.status == "completed", state.error
    assert state.continued_as_new == 4  # five steps, one per execution
    assert state.result == "done after one 3.0"
    assert [s.status for s in state.steps] == ["completed"] * 5
    assert [s.attempts for s in state.steps] == [1] * 5
    types = [e.type for e in state.events]
    assert types.count("run.continued_as_new") == 4
    for once in ("run.created", "run.started", "run.completed"):
        assert types.count(once) == 1, once
    assert state.progress.percent == 100
    await replays(handle)  # the last execution's history


async def test_max_steps_counts_across_executions(ts_client: Client, task_queue: str) -> None:
    defn = definition(
        [{"id": "spin", "action": "conditional", "condition": "true", "then": "spin"}],
        limits={"max_steps": 5},
    )
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, every_step(run_input(defn)))
        err, state = await failure(handle)
    assert err.type == contracts.E_MAX_STEPS
    assert state.continued_as_new == 4  # 5 steps ran, the 6th was refused


async def test_output_budget_spans_executions(
    ts_client: Client, task_queue: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(tracker, "STATE_OUTPUT_BUDGET", 5_000)
    big = "x" * 3_000
    defn = definition([{"id": f"s{i}", "action": "llm_call", "prompt": big} for i in range(3)])
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, every_step(run_input(defn)))
        state: RunState = await handle.result()
    assert state.continued_as_new == 2
    # the first output fits; the second and third would pass 5,000 bytes: previews
    assert [s.truncated for s in state.steps] == [False, True, True]


async def test_stream_spans_step_continue_as_new(dev_client: Client, task_queue: str) -> None:
    defn = definition([{"id": f"s{i}", "action": "llm_call", "prompt": f"p{i}"} for i in range(4)])
    async with make_worker(dev_client, task_queue, settings=SETTINGS):
        handle = await start(dev_client, task_queue, every_step(run_input(defn)))
        stream = WorkflowStreamClient.create(dev_client, handle.id)
        items = [(i.offset, i.data["type"]) async for i in stream.subscribe(["events"])]
        assert (await handle.result()).result == "p3"
    assert [o for o, _ in items] == list(range(len(items)))  # no gap, no duplicate
    types = [t for _, t in items]
    assert types.count("run.continued_as_new") == 3
    assert types.count("step.started") == 4 and types[-1] == "run.completed"
