"""Sub-tasks and parallel branches as child TaskRunWorkflows, on the time-skipping server.

Failures use a tool the definition does not allow (fails at once, no activity); slow
children use a long `wait` step, which never fires because these tests only skip time
while awaiting a result after every child has already ended or been cancelled.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import Replayer, Worker

from duratask.settings import Settings
from tests.helpers import definition, eventually, make_worker, run_input, start
from worker.main import activities_for, build_registry
from workflows import contracts
from workflows.contracts import E_SUBTASK_DEPTH as E_DEPTH
from workflows.definition import TaskDefinition
from workflows.models import CancelRequest, RunConfig, RunState
from workflows.run_workflow import TaskRunWorkflow

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
FAIL_STEP = {"id": "boom", "action": "tool_call", "tool": "not_allowed"}
SLOW_STEP = {"id": "slow", "action": "wait", "duration": "30d"}


def summarize() -> TaskDefinition:
    return definition(
        [{"id": "sum", "action": "llm_call", "prompt": "summary of {{ input.text }}"}],
        id="summarize",
        inputs={"text": {"type": "string", "required": True}},
    )


def failing(id: str = "failing") -> TaskDefinition:
    return definition([FAIL_STEP], id=id)


def slow(id: str = "slow") -> TaskDefinition:
    return definition([SLOW_STEP], id=id)


async def failed_state(handle: WorkflowHandle[Any, Any]) -> RunState:
    with pytest.raises(WorkflowFailureError) as exc:
        await handle.result()
    cause = exc.value.cause
    assert isinstance(cause, ApplicationError)
    return RunState.model_validate(cause.details[0])


async def wait_started(client: Client, workflow_id: str, timeout: float = 30) -> None:
    async def poll() -> None:
        while True:
            try:
                await client.get_workflow_handle(workflow_id).describe()
                return
            except RPCError:
                await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), timeout)


async def child_state(client: Client, workflow_id: str) -> RunState:
    return await client.get_workflow_handle_for(TaskRunWorkflow.run, workflow_id).query(
        TaskRunWorkflow.state
    )


# ---------------------------------------------------------------- sub_task


async def test_sub_task_passes_data_down_and_back(ts_client: Client, task_queue: str) -> None:
    parent = definition(
        [
            {
                "id": "child",
                "action": "sub_task",
                "task": "summarize",
                "input": {"text": "notes on {{ input.topic }}"},
            },
            {"id": "after", "action": "llm_call", "prompt": "parent got: {{ steps.child.output }}"},
        ],
        id="parent",
        inputs={"topic": {"type": "string", "required": True}},
    )
    inp = run_input(parent, {"topic": "otters"}, [summarize()], owner="ada", priority="high")
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, inp, id="run-sub-1")
        state: RunState = await handle.result()
        child = await ts_client.get_workflow_handle_for(
            TaskRunWorkflow.run, "run-sub-1/child"
        ).result()
        desc = await ts_client.get_workflow_handle("run-sub-1/child").describe()

    assert state.status == "completed"
    assert state.step("child").output == "summary of notes on otters"
    assert state.result == "parent got: summary of notes on otters"
    assert state.step("child").children == ["run-sub-1/child"]
    assert [(c.run_id, c.status) for c in state.children] == [("run-sub-1/child", "completed")]
    types = [e.type for e in state.events]
    assert types.index("child.started") < types.index("child.completed")
    # the child knows its parent, inherited owner and priority, and its usage rolled up
    assert child.parent_run_id == "run-sub-1"
    assert child.owner == "ada" and child.priority == "high" and child.trigger == "subtask"
    assert child.usage.total_tokens > 0
    assert state.step("child").usage == child.usage
    assert (
        state.usage.total_tokens
        == child.usage.total_tokens + state.step("after").usage.total_tokens
    )
    sa = desc.typed_search_attributes
    assert desc.parent_id == "run-sub-1"
    assert sa.get(contracts.SA_PARENT) == "run-sub-1"


async def test_sub_task_failure_fails_step_with_child_error(
    ts_client: Client, task_queue: str
) -> None:
    parent = definition(
        [{"id": "child", "action": "sub_task", "task": "failing", "owner": "bob"}], id="parent"
    )
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(parent, others=[failing()]))
        state = await failed_state(handle)
        child = await child_state(ts_client, f"{handle.id}/child")
    assert child.owner == "bob"  # the step's override beats the parent's owner
    assert state.status == "failed"
    assert state.error is not None
    assert state.error.code == "TOOL_ERROR"
    assert state.error.step_id == "child"
    assert f"{handle.id}/child" in state.error.message and "not_allowed" in state.error.message
    assert state.error.details["child_run_id"] == f"{handle.id}/child"
    assert state.error.details["child_step_id"] == "boom"
    assert state.children[0].status == "failed"


async def test_sub_task_in_a_loop_gets_a_new_child_id_each_time(
    ts_client: Client, task_queue: str
) -> None:
    parent = definition(
        [
            {"id": "child", "action": "sub_task", "task": "summarize", "input": {"text": "x"}},
            {"id": "again", "action": "conditional", "condition": "true", "then": "child"},
        ],
        id="parent",
        limits={"max_steps": 4},
    )
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(parent, others=[summarize()]))
        state = await failed_state(handle)
    assert state.error is not None and state.error.code == "MAX_STEPS_EXCEEDED"
    assert state.step("child").children == [f"{handle.id}/child", f"{handle.id}/child.2"]


async def test_depth_limit_fails_with_clear_error(ts_client: Client, task_queue: str) -> None:
    leaf = definition([{"id": "x", "action": "llm_call", "prompt": "leaf"}], id="leaf")
    middle = definition([{"id": "down", "action": "sub_task", "task": "leaf"}], id="middle")
    top = definition([{"id": "down", "action": "sub_task", "task": "middle"}], id="top")
    inp = run_input(top, others=[middle, leaf])
    inp.config = RunConfig(max_subtask_depth=1)
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, inp)
        state = await failed_state(handle)
    assert state.error is not None
    assert state.error.code == E_DEPTH
    assert "max_subtask_depth=1" in state.error.message
    assert state.error.details["child_run_id"] == f"{handle.id}/down"
    # the middle run started, the leaf never did
    assert [c.run_id for c in state.children] == [f"{handle.id}/down"]


# ---------------------------------------------------------------- parallel


async def test_parallel_merges_referenced_and_inline_branches(
    ts_client: Client, task_queue: str
) -> None:
    shout = definition(
        [{"id": "s", "action": "llm_call", "prompt": "{{ input.text | upper }}"}],
        id="shout",
        inputs={"text": {"type": "string", "required": True}},
    )
    parent = definition(
        [
            {"id": "prep", "action": "llm_call", "prompt": "prepared {{ input.topic }}"},
            {
                "id": "fan",
                "action": "parallel",
                "max_concurrency": 2,
                "branches": [
                    {
                        "name": "summary",
                        "task": "summarize",
                        "input": {"text": "{{ input.topic }}"},
                    },
                    {"name": "loud", "task": "shout", "input": {"text": "{{ input.topic }}"}},
                    {
                        "name": "inline",
                        "steps": [
                            {
                                "id": "i",
                                "action": "llm_call",
                                "prompt": "inline {{ input.topic }}, {{ steps.prep.output }}",
                            }
                        ],
                    },
                ],
            },
            {"id": "merge", "action": "llm_call", "prompt": "{{ steps.fan.output.loud }}!"},
        ],
        id="parent",
        inputs={"topic": {"type": "string", "required": True}},
    )
    inp = run_input(parent, {"topic": "otters"}, [summarize(), shout])
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, inp, id="run-par-1")
        state: RunState = await handle.result()
        inline = await child_state(ts_client, "run-par-1/fan/inline")
        child_tokens = 0
        for c in state.children:
            child_tokens += (await child_state(ts_client, c.run_id)).usage.total_tokens

    assert state.step("fan").output == {
        "summary": "summary of otters",
        "loud": "OTTERS",
        "inline": "inline otters, prepared otters",
    }
    assert state.result == "OTTERS!"
    assert state.step("fan").children == [
        "run-par-1/fan/summary",
        "run-par-1/fan/loud",
        "run-par-1/fan/inline",
    ]
    assert {c.status for c in state.children} == {"completed"}
    assert inline.definition_id == "parent--fan-2"
    assert [s.id for s in inline.steps] == ["i"]  # only the output of prep was handed down
    assert inline.parent_run_id == "run-par-1"
    assert state.step("fan").usage.total_tokens == child_tokens


async def test_parallel_fail_fast_cancels_siblings(ts_client: Client, task_queue: str) -> None:
    parent = definition(
        [
            {
                "id": "fan",
                "action": "parallel",
                "branches": [{"task": "slow"}, {"task": "failing"}, {"steps": [SLOW_STEP]}],
            }
        ],
        id="parent",
    )
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(parent, others=[slow(), failing()]))
        state = await failed_state(handle)
        siblings = [f"{handle.id}/fan/0", f"{handle.id}/fan/2"]
        descs = [await ts_client.get_workflow_handle(s).describe() for s in siblings]
        sibling_states = [await child_state(ts_client, s) for s in siblings]

    assert state.error is not None and state.error.code == "TOOL_ERROR"
    assert f"{handle.id}/fan/1" in state.error.message
    assert "2 other branch(es) cancelled" in state.error.message
    assert state.error.details["branches"] == {"0": "cancelled", "1": "failed", "2": "cancelled"}
    assert [d.status for d in descs] == [WorkflowExecutionStatus.CANCELED] * 2
    for s in sibling_states:
        assert s.status == "cancelled"
        assert s.cancel_reason == "branch '1' of step 'fan' failed (fail_fast)"
    assert [c.status for c in state.children] == ["cancelled", "failed", "cancelled"]


async def test_parallel_wait_all_collects_failure_beside_results(
    ts_client: Client, task_queue: str
) -> None:
    parent = definition(
        [
            {
                "id": "fan",
                "action": "parallel",
                "on_failure": "wait_all",
                "branches": [
                    {"task": "summarize", "input": {"text": "a"}},
                    {"task": "failing"},
                    {"steps": [{"id": "i", "action": "llm_call", "prompt": "b"}]},
                ],
            }
        ],
        id="parent",
    )
    async with make_worker(ts_client, task_queue):
        handle = await start(
            ts_client, task_queue, run_input(parent, others=[summarize(), failing()])
        )
        state: RunState = await handle.result()
    out = state.step("fan").output
    assert out["results"] == ["summary of a", None, "b"]
    assert out["ok"] is False
    assert out["errors"]["1"]["code"] == "TOOL_ERROR"
    assert out["errors"]["1"]["run_id"] == f"{handle.id}/fan/1"
    assert [c.status for c in state.children] == ["completed", "failed", "completed"]


async def test_fail_fast_never_starts_queued_branches(ts_client: Client, task_queue: str) -> None:
    parent = definition(
        [
            {
                "id": "fan",
                "action": "parallel",
                "max_concurrency": 1,
                "branches": [{"task": "failing"}, {"task": "slow"}],
            }
        ],
        id="parent",
    )
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(parent, others=[slow(), failing()]))
        state = await failed_state(handle)
        with pytest.raises(RPCError):
            await ts_client.get_workflow_handle(f"{handle.id}/fan/1").describe()
    assert [c.status for c in state.children] == ["failed", "cancelled"]
    assert state.error is not None and state.error.details["branches"] == {
        "0": "failed",
        "1": "cancelled",
    }


async def test_parallel_refuses_branches_sharing_an_id(ts_client: Client, task_queue: str) -> None:
    parent = definition(
        [
            {
                "id": "fan",
                "action": "parallel",
                "branches": [{"name": "1", "task": "slow"}, {"task": "slow"}],
            }
        ],
        id="parent",
    )
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(parent, others=[slow()]))
        state = await failed_state(handle)
    assert state.error is not None and "unique name" in state.error.message
    assert state.children == []  # refused before anything started


# ---------------------------------------------------------------- cancellation


async def test_cancel_cascades_two_levels(ts_client: Client, task_queue: str) -> None:
    middle = definition([{"id": "deeper", "action": "sub_task", "task": "slow"}], id="middle")
    top = definition(
        [
            {
                "id": "fan",
                "action": "parallel",
                "branches": [{"name": "a", "task": "middle"}, {"name": "b", "task": "slow"}],
            }
        ],
        id="top",
    )
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(top, others=[middle, slow()]))
        grandchild = f"{handle.id}/fan/a/deeper"
        await wait_started(ts_client, grandchild)
        await wait_started(ts_client, f"{handle.id}/fan/b")
        parent_state = await handle.query(TaskRunWorkflow.state)
        assert parent_state.status == "awaiting_parallel"
        await handle.signal(
            TaskRunWorkflow.request_cancel,
            CancelRequest(reason="no longer needed", requested_by="ops"),
        )
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        ids = [handle.id, f"{handle.id}/fan/a", f"{handle.id}/fan/b", grandchild]
        descs = [await ts_client.get_workflow_handle(i).describe() for i in ids]
        states = [await child_state(ts_client, i) for i in ids]

    assert [d.status for d in descs] == [WorkflowExecutionStatus.CANCELED] * 4
    for s in states:
        assert s.status == "cancelled", s.run_id
        assert s.cancel_reason == "no longer needed", s.run_id
        assert s.error is not None and s.error.message == "no longer needed"


async def test_cancel_reason_travels_with_the_cancel_itself(
    dev_client: Client, task_queue: str
) -> None:
    """The reason reaches every level even when no reason signal does (the signal and the
    cancel are delivered separately, so under load a child can get the cancel first):
    here only Temporal's cancel, with its reason, is sent. On the dev server in real time:
    the time-skipping server could skip the grandchild's 30-day wait to its end before
    the cancel cascaded down to it."""
    middle = definition([{"id": "deeper", "action": "sub_task", "task": "slow"}], id="middle")
    top = definition([{"id": "nest", "action": "sub_task", "task": "middle"}], id="top")
    async with make_worker(dev_client, task_queue):
        handle = await start(dev_client, task_queue, run_input(top, others=[middle, slow()]))
        grandchild = f"{handle.id}/nest/deeper"
        await wait_started(dev_client, grandchild)
        await handle.cancel(reason="superseded")  # no request_cancel signal
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        ids = [handle.id, f"{handle.id}/nest", grandchild]

        async def all_closed() -> list[Any]:
            descs = [await dev_client.get_workflow_handle(i).describe() for i in ids]
            return descs if all(d.status != WorkflowExecutionStatus.RUNNING for d in descs) else []

        descs = await eventually(all_closed)
        states = [await child_state(dev_client, i) for i in ids]
    assert [d.status for d in descs] == [WorkflowExecutionStatus.CANCELED] * 3
    for s in states:
        assert s.cancel_reason == "superseded", s.run_id
        assert s.error is not None and s.error.message == "superseded", s.run_id


async def test_timed_out_parent_cancels_its_child(dev_client: Client, task_queue: str) -> None:
    # On the dev server in real time with a short limit: on the time-skipping server this
    # waits for time to skip an hour, which stalls whenever an earlier test left an
    # activity running on that shared server.
    timed = definition(
        [{"id": "child", "action": "sub_task", "task": "slow"}],
        id="timed",
        limits={"timeout": "4s"},
    )
    async with make_worker(dev_client, task_queue):
        handle = await start(dev_client, task_queue, run_input(timed, others=[slow()]))
        state = await failed_state(handle)  # the run's 4s limit, while the child waits 30d
        desc = await dev_client.get_workflow_handle(f"{handle.id}/child").describe()
    assert state.error is not None and state.error.code == "TIMEOUT"
    assert state.children[0].status == "cancelled"
    assert desc.status == WorkflowExecutionStatus.CANCELED


async def test_cancelling_a_child_fails_the_parent_step(ts_client: Client, task_queue: str) -> None:
    parent = definition([{"id": "child", "action": "sub_task", "task": "slow"}], id="parent")
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(parent, others=[slow()]))
        await wait_started(ts_client, f"{handle.id}/child")
        await ts_client.get_workflow_handle(f"{handle.id}/child").cancel()
        state = await failed_state(handle)
    assert state.status == "failed"
    assert state.error is not None and state.error.code == "CANCELLED"
    assert state.children[0].status == "cancelled"


# ---------------------------------------------------------------- replay


def composite() -> tuple[TaskDefinition, list[TaskDefinition]]:
    parent = definition(
        [
            {"id": "child", "action": "sub_task", "task": "summarize", "input": {"text": "x"}},
            {
                "id": "fan",
                "action": "parallel",
                "branches": [
                    {"name": "one", "task": "summarize", "input": {"text": "y"}},
                    {"name": "two", "steps": [{"id": "i", "action": "llm_call", "prompt": "z"}]},
                ],
            },
        ],
        id="parent",
    )
    return parent, [summarize()]


def fail_fast() -> tuple[TaskDefinition, list[TaskDefinition]]:
    parent = definition(
        [
            {
                "id": "fan",
                "action": "parallel",
                "branches": [{"task": "slow"}, {"task": "failing"}, {"steps": [SLOW_STEP]}],
            }
        ],
        id="parent",
    )
    return parent, [slow(), failing()]


# saved history file -> (workflow id, scenario, child ids started, in order)
SCENARIOS = {
    "children_composite.json": (
        "run-replay",
        composite,
        ["run-replay/child", "run-replay/fan/one", "run-replay/fan/two"],
    ),
    "children_fail_fast.json": (
        "run-replay-ff",
        fail_fast,
        ["run-replay-ff/fan/0", "run-replay-ff/fan/1", "run-replay-ff/fan/2"],
    ),
}


def child_starts(history_json: dict[str, Any]) -> list[str]:
    return [
        e["startChildWorkflowExecutionInitiatedEventAttributes"]["workflowId"]
        for e in history_json["events"]
        if "startChildWorkflowExecutionInitiatedEventAttributes" in e
    ]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_replay_starts_no_duplicate_child(
    ts_client: Client, task_queue: str, name: str
) -> None:
    """Run with a worker that keeps no workflow cache, so every workflow task replays
    the whole history first: each child must still be started exactly once."""
    run_id, scenario, expected = SCENARIOS[name]
    parent, others = scenario()
    settings = Settings(http_allow_private=True)
    worker = Worker(
        ts_client,
        task_queue=task_queue,
        workflows=[TaskRunWorkflow],
        activities=activities_for(settings, build_registry(settings)),
        max_cached_workflows=0,
    )
    async with worker:
        handle = await start(ts_client, task_queue, run_input(parent, others=others), id=run_id)
        try:
            await handle.result()
        except WorkflowFailureError:
            pass  # the fail_fast scenario fails on purpose
    history = await handle.fetch_history()
    assert child_starts(json.loads(history.to_json())) == expected
    if os.environ.get("DURATASK_WRITE_HISTORIES"):  # refresh the saved history on purpose
        HISTORIES.mkdir(exist_ok=True)
        (HISTORIES / name).write_text(history.to_json())
    replayer = Replayer(workflows=[TaskRunWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)  # raises on any nondeterminism (e.g. a new child)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_saved_history_replays(name: str) -> None:
    run_id, _, expected = SCENARIOS[name]
    text = (HISTORIES / name).read_text()
    assert child_starts(json.loads(text)) == expected
    history = WorkflowHistory.from_json(run_id, text)
    replayer = Replayer(workflows=[TaskRunWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
