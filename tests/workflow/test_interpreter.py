"""TaskRunWorkflow on the time-skipping server: every step kind built here, branching,
timers, cancellation of an in-flight activity, retries, timeouts, limits, failures.

The LLM and notify activities are the real ones (offline `scripted` provider); the
tool activity is a fake re-declared under its real name `duratask.tool.call`, so each
test decides what the tool does and sees what the workflow asked of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.llm.activity import LlmActivities
from activities.notify import NotifyActivities
from activities.tools.registry import build_registry
from duratask.settings import Settings
from tests.helpers import definition, make_worker, run_input, start
from workflows import contracts
from workflows.models import (
    CancelRequest,
    Priority,
    PriorityChange,
    RunState,
    ToolRequest,
    ToolResult,
)
from workflows.run_workflow import TaskRunWorkflow

ToolFn = Callable[[ToolRequest], Awaitable[ToolResult]]


class FakeTool:
    """`duratask.tool.call` whose behaviour each test supplies; records every call."""

    def __init__(self, fn: ToolFn | None = None) -> None:
        self.fn = fn
        self.calls: list[ToolRequest] = []
        self.attempts: list[int] = []
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    @activity.defn(name=contracts.TOOL_ACTIVITY)
    async def call(self, req: ToolRequest) -> ToolResult:
        self.calls.append(req)
        self.attempts.append(activity.info().attempt)
        self.started.set()
        if self.fn is None:
            return ToolResult(output={"tool": req.tool, "args": req.args})
        return await self.fn(req)


def worker(client: Client, task_queue: str, tool: FakeTool) -> Worker:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    registry = build_registry(settings)
    acts = [
        LlmActivities(settings, registry).complete,
        NotifyActivities(settings).notify,
        tool.call,
    ]
    return make_worker(client, task_queue, settings=settings, activities=acts)


async def failure(handle: WorkflowHandle[Any, Any]) -> tuple[ApplicationError, RunState]:
    """The run's failure and the state attached to it."""
    with pytest.raises(WorkflowFailureError) as e:
        await handle.result()
    cause = e.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause, RunState.model_validate(cause.details[0])


async def test_llm_tool_notify_chain_with_state(ts_client: Client, task_queue: str) -> None:
    defn = definition(
        [
            {"id": "ask", "action": "llm_call", "label": "Ask", "prompt": "Hi {{ input.name }}"},
            {"id": "use", "action": "tool_call", "tool": "lookup",
             "args": {"q": "{{ steps.ask.output }}", "n": "{{ input.n }}"}},
            {"id": "tell", "action": "notify", "message": "got {{ steps.use.output.args.q }}"},
        ],
        inputs={"name": {"type": "string", "required": True}, "n": {"type": "integer"}},
        tools=["lookup"],
    )  # fmt: skip
    tool = FakeTool()
    async with worker(ts_client, task_queue, tool):
        handle = await start(ts_client, task_queue, run_input(defn, {"name": "Ada", "n": "2"}))
        state: RunState = await handle.result()
    assert state.status == "completed"
    assert state.step("ask").output == "Hi Ada"
    assert tool.calls[0].args == {"q": "Hi Ada", "n": 2}
    assert tool.calls[0].tool == "lookup" and tool.calls[0].allowed == ["lookup"]
    assert tool.calls[0].idempotency_key.endswith("/use/1/0")
    assert state.step("tell").output == {"message": "got Hi Ada", "delivered": ["log"]}
    assert state.result == state.step("tell").output
    assert [p.done for p in state.plan] == [True, True, True]
    assert state.plan[0].label == "Ask"
    assert state.progress.percent == 100 and state.progress.current_step is None
    assert state.progress.estimated_time_remaining_ms == 0
    assert state.execution_count == 1 and state.retry_count == 0
    assert state.started_at and state.completed_at and state.duration_ms is not None
    for s in state.steps:
        assert s.status == "completed" and s.started_at and s.completed_at
        assert s.attempts == 1
    types = [e.type for e in state.events]
    assert types[:3] == ["run.created", "run.queued", "run.started"]
    assert types[-1] == "run.completed"
    assert types.count("step.started") == 3 and types.count("step.completed") == 3
    assert state.input == {"name": "Ada", "n": 2}
    summaries = [
        e.user_metadata.summary.data.decode()
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert any("use: tool lookup" in s for s in summaries)
    assert any("tell: notify" in s for s in summaries)
    assert any(s.startswith('"ask:') for s in summaries), summaries


@pytest.mark.parametrize(("severity", "taken", "skipped"), [("high", "page", "log"),
                                                             ("low", "log", "page")])  # fmt: skip
async def test_conditional_takes_both_branches(
    ts_client: Client, task_queue: str, severity: str, taken: str, skipped: str
) -> None:
    defn = definition(
        [
            {"id": "route", "action": "conditional", "condition": "input.severity == 'high'",
             "then": "page", "else": "log"},
            {"id": "page", "action": "notify", "message": "paging", "next": "end"},
            {"id": "log", "action": "notify", "message": "logging"},
        ]
    )  # fmt: skip
    async with worker(ts_client, task_queue, FakeTool()):
        handle = await start(ts_client, task_queue, run_input(defn, {"severity": severity}))
        state: RunState = await handle.result()
    assert state.step("route").output == {"result": severity == "high", "next": taken}
    assert state.step(taken).status == "completed"
    assert state.step(skipped).status == "skipped"
    assert any(e.type == "step.skipped" and e.step_id == skipped for e in state.events)
    branch = next(e for e in state.events if e.type == "step.branch")
    assert branch.data["taken"] == taken


async def test_conditional_without_else_falls_through(ts_client: Client, task_queue: str) -> None:
    defn = definition(
        [
            {"id": "c", "action": "conditional", "condition": "false", "then": "end"},
            {"id": "after", "action": "notify", "message": "fell through"},
        ]
    )
    async with worker(ts_client, task_queue, FakeTool()):
        state = await (await start(ts_client, task_queue, run_input(defn))).result()
    assert state.step("after").status == "completed"


async def test_wait_duration_is_a_durable_timer(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    defn = definition([{"id": "nap", "action": "wait", "duration": "3d"},
                       {"id": "wake", "action": "notify", "message": "up"}])  # fmt: skip
    before = await ts_env.get_current_time()
    async with worker(ts_env.client, task_queue, FakeTool()):
        handle = await start(ts_env.client, task_queue, run_input(defn))
        state: RunState = await handle.result()
    assert state.step("nap").output == {"waited_s": 3 * 86400}
    assert (state.step("nap").duration_ms or 0) >= 3 * 86400 * 1000
    assert (await ts_env.get_current_time()) - before >= timedelta(days=3)
    timers = [
        e
        async for e in handle.fetch_history_events()
        if e.HasField("timer_started_event_attributes")
    ]
    assert len(timers) == 1


async def test_wait_until_a_time(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    target = (await ts_env.get_current_time()) + timedelta(hours=5)
    defn = definition([{"id": "until", "action": "wait", "until": "{{ input.at }}"}])
    async with worker(ts_env.client, task_queue, FakeTool()):
        handle = await start(ts_env.client, task_queue, run_input(defn, {"at": target.isoformat()}))
        state: RunState = await handle.result()
    waited = state.step("until").output["waited_s"]
    assert 4 * 3600 < waited <= 5 * 3600
    assert state.completed_at is not None and state.completed_at >= target


async def test_wait_until_without_time_zone_fails(ts_client: Client, task_queue: str) -> None:
    defn = definition([{"id": "until", "action": "wait", "until": "2030-01-01T00:00:00"}])
    async with worker(ts_client, task_queue, FakeTool()):
        err, state = await failure(await start(ts_client, task_queue, run_input(defn)))
    assert err.type == contracts.E_STEP_FAILED
    assert state.error and state.error.step_id == "until" and "time zone" in state.error.message


async def test_cancel_mid_activity_cancels_the_activity(ts_client: Client, task_queue: str) -> None:
    async def slow(req: ToolRequest) -> ToolResult:
        try:
            while True:
                activity.heartbeat("working")
                await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            tool.cancelled.set()
            raise

    tool = FakeTool(slow)
    defn = definition(
        [
            {"id": "work", "action": "tool_call", "tool": "slow"},
            {"id": "never", "action": "notify", "message": "unreachable"},
        ],
        tools=["slow"],
    )
    async with worker(ts_client, task_queue, tool):
        handle = await start(ts_client, task_queue, run_input(defn))
        await asyncio.wait_for(tool.started.wait(), 30)
        running = await handle.query(TaskRunWorkflow.state)
        assert running.status == "running" and running.current_step == "work"
        assert running.step("work").status == "running"
        await handle.signal(TaskRunWorkflow.request_cancel, CancelRequest(reason="changed my mind"))
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as e:
            await handle.result()
        assert isinstance(e.value.cause, CancelledError)
        await asyncio.wait_for(tool.cancelled.wait(), 30)
        state = await handle.query(TaskRunWorkflow.state)
    assert state.status == "cancelled"
    assert state.cancel_reason == "changed my mind"
    assert state.error and state.error.code == contracts.E_CANCELLED
    assert state.step("work").status == "cancelled"
    assert state.step("never").status == "pending"
    assert [e.type for e in state.events][-1] == "run.cancelled"
    assert len(tool.calls) == 1


async def test_failing_activity_is_retried_per_step_policy(
    ts_client: Client, task_queue: str
) -> None:
    async def flaky(req: ToolRequest) -> ToolResult:
        if activity.info().attempt < 3:
            raise RuntimeError(f"boom {activity.info().attempt}")
        return ToolResult(output="third time lucky")

    tool = FakeTool(flaky)
    defn = definition(
        [{"id": "f", "action": "tool_call", "tool": "flaky",
          "retry": {"max_attempts": 3, "initial_interval": "2s", "backoff": 1}}],
        tools=["flaky"],
    )  # fmt: skip
    async with worker(ts_client, task_queue, tool):
        state: RunState = await (await start(ts_client, task_queue, run_input(defn))).result()
    assert state.step("f").output == "third time lucky"
    assert tool.attempts == [1, 2, 3]


async def test_retries_exhausted_fail_the_run(ts_client: Client, task_queue: str) -> None:
    async def broken(req: ToolRequest) -> ToolResult:
        raise RuntimeError("still broken")

    tool = FakeTool(broken)
    defn = definition(
        [{"id": "f", "action": "tool_call", "tool": "broken",
          "retry": {"max_attempts": 2, "initial_interval": "1s"}}],
        tools=["broken"],
    )  # fmt: skip
    async with worker(ts_client, task_queue, tool):
        _err, state = await failure(await start(ts_client, task_queue, run_input(defn)))
    assert tool.attempts == [1, 2]
    assert state.error is not None
    assert state.error.step_id == "f" and "still broken" in state.error.message
    assert state.step("f").status == "failed"


async def test_per_step_timeout(ts_client: Client, task_queue: str) -> None:
    release = asyncio.Event()

    async def hang(req: ToolRequest) -> ToolResult:
        # it does not heartbeat, so it never hears of its timeout: the test releases it
        # once the run has failed, rather than leave it running into the worker's
        # shutdown (and the time-skipping server's clock locked while it runs)
        try:
            await asyncio.wait_for(release.wait(), 60)
        except asyncio.CancelledError:
            tool.cancelled.set()
            raise
        return ToolResult(output="late")

    tool = FakeTool(hang)
    defn = definition(
        [{"id": "slow", "action": "tool_call", "tool": "hang", "timeout": "1s",
          "retry": {"max_attempts": 1}}],
        tools=["hang"],
    )  # fmt: skip
    async with worker(ts_client, task_queue, tool):
        try:
            _err, state = await failure(await start(ts_client, task_queue, run_input(defn)))
        finally:
            release.set()
    assert state.error is not None
    assert state.error.code == contracts.E_TIMEOUT and state.error.step_id == "slow"
    assert tool.attempts == [1]


async def test_tool_error_is_a_structured_failure(ts_client: Client, task_queue: str) -> None:
    async def refuse(req: ToolRequest) -> ToolResult:
        return ToolResult(error="the ticket does not exist")

    tool = FakeTool(refuse)
    defn = definition(
        [
            {"id": "a", "action": "llm_call", "prompt": "x"},
            {"id": "close", "action": "tool_call", "tool": "tickets"},
            {"id": "b", "action": "notify", "message": "never"},
        ],
        tools=["tickets"],
    )
    async with worker(ts_client, task_queue, tool):
        err, state = await failure(await start(ts_client, task_queue, run_input(defn)))
    assert err.type == contracts.E_TOOL and err.non_retryable
    assert state.status == "failed"
    assert state.error is not None
    assert state.error.model_dump(include={"code", "message", "step_id"}) == {
        "code": contracts.E_TOOL,
        "message": "the ticket does not exist",
        "step_id": "close",
    }
    assert state.step("close").status == "failed"
    assert state.step("b").status == "pending"
    assert tool.attempts == [1]  # a deterministic failure is not retried
    assert [e.type for e in state.events][-1] == "run.failed"
    assert state.completed_at is not None and state.progress.percent < 100


async def test_missing_template_value_names_the_name(ts_client: Client, task_queue: str) -> None:
    defn = definition([{"id": "a", "action": "llm_call", "prompt": "{{ input.ticket.title }}"}])
    async with worker(ts_client, task_queue, FakeTool()):
        err, state = await failure(
            await start(ts_client, task_queue, run_input(defn, {"ticket": {}}))
        )
    assert err.type == contracts.E_TEMPLATE
    assert state.error is not None and state.error.step_id == "a"
    assert "input.ticket.title" in state.error.message
    assert state.error.details == {"missing": "input.ticket.title"}


async def test_invalid_input_fails_the_run(ts_client: Client, task_queue: str) -> None:
    defn = definition(
        [{"id": "a", "action": "llm_call", "prompt": "x"}],
        inputs={"n": {"type": "integer", "required": True}},
    )
    async with worker(ts_client, task_queue, FakeTool()):
        err, _state = await failure(await start(ts_client, task_queue, run_input(defn)))
    assert err.type == contracts.E_INVALID_INPUT and "'n' is required" in err.message


async def test_max_steps_limit(ts_client: Client, task_queue: str) -> None:
    defn = definition(
        [
            {"id": "tick", "action": "notify", "message": "tick"},
            {"id": "again", "action": "conditional", "condition": "true", "then": "tick",
             "else": "end"},
        ],
        limits={"max_steps": 5},
    )  # fmt: skip
    async with worker(ts_client, task_queue, FakeTool()):
        err, state = await failure(await start(ts_client, task_queue, run_input(defn)))
    assert err.type == contracts.E_MAX_STEPS
    assert state.error is not None and "max_steps=5" in state.error.message
    assert state.step("tick").attempts == 3 and state.step("again").attempts == 2


async def test_run_timeout_limit(ts_env: WorkflowEnvironment, task_queue: str) -> None:
    defn = definition(
        [{"id": "nap", "action": "wait", "duration": "2h"},
         {"id": "after", "action": "notify", "message": "never"}],
        limits={"timeout": "30m"},
    )  # fmt: skip
    async with worker(ts_env.client, task_queue, FakeTool()):
        err, state = await failure(await start(ts_env.client, task_queue, run_input(defn)))
    assert err.type == contracts.E_TIMEOUT
    assert state.error is not None and "30m" in state.error.message
    assert state.error.step_id == "nap"
    assert state.duration_ms is not None and 30 * 60_000 <= state.duration_ms < 2 * 3600_000
    assert state.step("after").status == "pending"


async def test_large_output_is_truncated_and_says_so(ts_client: Client, task_queue: str) -> None:
    from pydantic import BaseModel

    from activities.tools.activity import ToolActivities

    class NoArgs(BaseModel):
        pass

    settings = Settings(_env_file=None, max_output_bytes=10_000)  # type: ignore[call-arg]
    registry = build_registry(settings)

    @registry.tool("big", "returns 3 MB", NoArgs)
    async def big(args: NoArgs, ctx: Any) -> str:
        return "x" * 3_000_000

    acts = [LlmActivities(settings, registry).complete, ToolActivities(settings, registry).call]
    defn = definition([{"id": "dump", "action": "tool_call", "tool": "big"},
                       {"id": "echo", "action": "llm_call", "prompt": "{{ steps.dump.output }}"}],
                      tools=["big"])  # fmt: skip
    inp = run_input(defn)
    inp.config.max_output_bytes = 10_000
    async with make_worker(ts_client, task_queue, settings=settings, activities=acts):
        state: RunState = await (await start(ts_client, task_queue, inp)).result()
    dump = state.step("dump")
    assert dump.truncated is True
    assert len(dump.output) < 11_000 and "[truncated: 3000000 bytes" in dump.output
    done = next(e for e in state.events if e.type == "step.completed" and e.step_id == "dump")
    assert done.data["truncated"] is True
    assert state.status == "completed"


async def test_progress_estimate_and_current_details(
    ts_env: WorkflowEnvironment, task_queue: str
) -> None:
    ts_client = ts_env.client
    gate = asyncio.Event()

    async def held(req: ToolRequest) -> ToolResult:
        while not gate.is_set():
            activity.heartbeat()
            await asyncio.sleep(0.1)
        return ToolResult(output="ok")

    tool = FakeTool(held)
    defn = definition(
        [
            {"id": "one", "action": "wait", "duration": "1s"},  # real time: no result waiter
            {"id": "two", "action": "tool_call", "tool": "held", "label": "Held tool"},
            {"id": "three", "action": "notify", "message": "bye"},
            {"id": "four", "action": "notify", "message": "bye"},
        ],
        tools=["held"],
    )
    async with worker(ts_client, task_queue, tool):
        handle = await start(ts_client, task_queue, run_input(defn))
        await asyncio.wait_for(tool.started.wait(), 30)
        mid = await handle.query(TaskRunWorkflow.state)
        details = await _current_details(handle)
        gate.set()
        await handle.result()
    assert mid.progress.percent == 25
    assert mid.progress.current_step == "Held tool"
    assert [p.done for p in mid.plan] == [True, False, False, False]
    # one step done, three to go: the estimate is three times the mean step so far
    one = mid.step("one").duration_ms
    assert one is not None and one >= 1000
    assert mid.progress.estimated_time_remaining_ms == 3 * one
    assert "`two`" in details and "running" in details


async def _current_details(handle: WorkflowHandle[Any, Any]) -> str:
    """What the Temporal UI shows as the run's current details (built-in metadata query)."""
    meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(meta.current_details)


async def test_priority_change_applies_to_later_steps(ts_client: Client, task_queue: str) -> None:
    gate = asyncio.Event()
    seen: list[tuple[str, int | None, str | None]] = []

    async def record(req: ToolRequest) -> ToolResult:
        prio = activity.info().priority
        seen.append((req.step_id, prio.priority_key, prio.fairness_key))
        if req.step_id == "first":
            while not gate.is_set():
                activity.heartbeat()
                await asyncio.sleep(0.1)
        return ToolResult(output="ok")

    tool = FakeTool(record)
    defn = definition(
        [
            {"id": "first", "action": "tool_call", "tool": "t"},
            {"id": "second", "action": "tool_call", "tool": "t"},
        ],
        tools=["t"],
    )
    inp = run_input(defn, priority="low", owner="agent-9")
    async with worker(ts_client, task_queue, tool):
        handle = await start(ts_client, task_queue, inp)
        await asyncio.wait_for(tool.started.wait(), 30)
        await handle.signal(
            TaskRunWorkflow.set_priority, PriorityChange(priority=Priority.critical)
        )
        gate.set()
        state: RunState = await handle.result()
    assert seen == [("first", 5, "agent-9"), ("second", 1, "agent-9")]
    assert state.priority == "critical"
    assert any(e.type == "run.priority_changed" for e in state.events)


async def test_many_large_outputs_stay_under_the_payload_limit(
    ts_client: Client, task_queue: str
) -> None:
    async def big(req: ToolRequest) -> ToolResult:
        return ToolResult(output="y" * 250_000)

    steps: list[dict[str, Any]] = [
        {"id": f"s{i}", "action": "tool_call", "tool": "big"} for i in range(8)
    ]
    steps.append({"id": "last", "action": "notify", "message": "{{ steps.s7.output | len }}"})
    defn = definition(steps, tools=["big"])
    async with worker(ts_client, task_queue, FakeTool(big)):
        handle = await start(ts_client, task_queue, run_input(defn))
        state: RunState = await handle.result()
    size = len(state.model_dump_json().encode())
    assert size < 1_200_000
    assert [state.step(f"s{i}").truncated for i in range(8)] == [False] * 4 + [True] * 4
    assert "truncated in the run state: 250000 bytes" in state.step("s7").output
    # later steps still saw the whole value
    assert state.step("last").output["message"] == "250000"
