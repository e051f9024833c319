"""Regenerate the saved run histories that tests/workflow/test_replay.py replays.

    python -m tests.histories.record [scenario ...]

Runs each scenario below as a real TaskRunWorkflow on the time-skipping server (with
the real LLM and notify activities and a stand-in `duratask.tool.call`) and writes its
history as JSON next to this file. Re-record only on purpose: a history that no longer
replays means a workflow change broke determinism for runs already in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from temporalio import activity
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.llm.activity import LlmActivities
from activities.notify import NotifyActivities
from activities.tools.registry import build_registry
from duratask.logging import get_logger
from duratask.settings import Settings
from duratask.store.db import create_engine, migrate
from duratask.store.definitions import DefinitionStore
from tests.helpers import APPROVAL_KEY, definition, make_worker, run_input, start
from worker.client import ensure_search_attributes
from workflows import contracts, proofs
from workflows.mcp_tools import spec
from workflows.models import (
    ApprovalDecision,
    BudgetRaise,
    DailyLimits,
    InputSubmission,
    Intervention,
    McpListRequest,
    McpListResult,
    Priority,
    PriorityChange,
    RunInput,
    RunMeta,
    ToolRequest,
    ToolResult,
    Trigger,
)
from workflows.run_workflow import TaskRunWorkflow

log = get_logger(__name__)
HERE = Path(__file__).parent
SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]
# for runs that check proofs: the key tests/workflow/test_replay.py installs
KEYED = Settings(_env_file=None, approval_key=SecretStr(APPROVAL_KEY))  # type: ignore[call-arg]

SCENARIOS: dict[str, dict[str, Any]] = {
    "every_step_kind": {
        "steps": [
            {"id": "ask", "action": "llm_call", "prompt": "Summarise {{ input.ticket }}"},
            {"id": "look", "action": "tool_call", "tool": "lookup",
             "args": {"q": "{{ steps.ask.output }}"}},
            {"id": "route", "action": "conditional",
             "condition": "'urgent' in steps.ask.output", "then": "nap", "else": "end"},
            {"id": "nap", "action": "wait", "duration": "2h"},
            {"id": "tell", "action": "notify", "message": "done: {{ steps.look.output.q }}"},
        ],
        "tools": ["lookup"],
        "inputs": {"ticket": {"type": "string", "required": True}},
        "input": {"ticket": "urgent: disk full"},
    },
    "tool_failure": {
        "steps": [
            {"id": "route", "action": "conditional", "condition": "input.go", "then": "end",
             "else": "close"},
            {"id": "close", "action": "tool_call", "tool": "lookup", "args": {"fail": True}},
        ],
        "tools": ["lookup"],
        "input": {"go": False},
    },
    "expression_failure": {  # an expression error inside the run fails its step
        "steps": [
            {"id": "say", "action": "notify", "message": "{{ input.s * 2 }} {{ sum([[1]], []) }}"},
            {"id": "route", "action": "conditional", "condition": "-input.s", "then": "end"},
        ],
        "input": {"s": "abc"},
    },
    "cancelled_mid_activity": {
        "steps": [{"id": "work", "action": "tool_call", "tool": "lookup",
                   "args": {"hang": True}}],
        "tools": ["lookup"],
        "input": {},
        "cancel": True,
    },
    # an agent calling a pinned MCP tool by its model-facing name (docs/mcp.md)
    "mcp_agent": {
        "steps": [{"id": "work", "action": "llm_call", "prompt": "Note it.",
                   "model": {"provider": "scripted", "name": "script", "script": [
                       {"tool_calls": [{"id": "c1", "name": "mcp__notes__remember",
                                        "arguments": {"note": "hi"}}]},
                       {"text": "noted"}]}}],
        "tools": ["mcp:notes/*"],
        "input": {},
    },
    # an agent step that sets its plan with the plan tool, then is cancelled while its
    # next model call is in flight (the workflow cancels that activity at once)
    "agent_cancelled_mid_model_call": {
        "steps": [{"id": "think", "action": "llm_call", "prompt": "plan, then think",
                   "model": {"provider": "scripted", "name": "script", "script": [
                       {"tool_calls": [{"id": "p", "name": "plan",
                                        "arguments": {"items": ["look", "answer"]}}]},
                       {"text": "1. look\n2. answer", "delay": 3600},
                   ]}}],
        "tools": ["plan"],
        "input": {},
        "cancel": "model_call",
    },
    # the step's model answers 429 every time: after `fallback_after` attempts its
    # fallback answers (docs/models-and-tools.md#fallback-models)
    "model_fallback": {
        "steps": [{"id": "ask", "action": "llm_call", "prompt": "hello",
                   "model": {"provider": "scripted", "name": "script", "script": [
                       {"error": {"status": 429, "message": "busy", "retry_after": 1}}],
                       "fallback": [{"name": "script", "script": [{"text": "from the spare"}]}],
                   }}],
        "input": {},
    },
}  # fmt: skip

STARTED = asyncio.Event()


@activity.defn(name=contracts.MCP_LIST_ACTIVITY)
async def mcp_list(req: McpListRequest) -> McpListResult:
    params = {"type": "object", "properties": {"note": {"type": "string"}}}
    return McpListResult(
        tools=[spec(s, "remember", "Remember a note.", params) for s in req.servers]
    )


@activity.defn(name=contracts.TOOL_ACTIVITY)
async def lookup(req: ToolRequest) -> ToolResult:
    if req.args.get("fail"):
        return ToolResult(error="no such ticket")
    if req.args.get("hang"):
        STARTED.set()
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.2)
    return ToolResult(output={"q": req.args.get("q"), "hits": 1})


async def _second_model_call_running(handle: Any) -> None:
    """Until the second model call (the delayed one) is running."""
    while True:
        desc = await handle.describe()
        if any(
            pa.activity_type.name == contracts.LLM_ACTIVITY and pa.activity_id != "1"
            for pa in desc.raw_description.pending_activities
        ):
            await asyncio.sleep(0.5)
            return
        await asyncio.sleep(0.1)


async def record(name: str, spec: dict[str, Any]) -> Path:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=shutil.which("temporal-test-server"),
    )
    try:
        await ensure_search_attributes(env.client)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        registry = build_registry(settings)
        acts = [
            LlmActivities(settings, registry).complete,
            NotifyActivities(settings).notify,
            lookup,
            mcp_list,
        ]
        tq = f"record-{uuid.uuid4().hex[:8]}"
        spec = dict(spec)
        given = spec.pop("input")
        cancel = spec.pop("cancel", False)
        defn = definition(spec.pop("steps"), id=name.replace("_", "-"), **spec)
        async with make_worker(env.client, tq, settings=settings, activities=acts):
            handle = await start(env.client, tq, run_input(defn, given), id=f"run-{name}")
            if cancel == "model_call":
                await asyncio.wait_for(_second_model_call_running(handle), 30)
                await handle.cancel()
            elif cancel:
                await asyncio.wait_for(STARTED.wait(), 30)
                await handle.cancel()
            with contextlib.suppress(WorkflowFailureError):
                await handle.result()
        history = await handle.fetch_history()
    finally:
        await env.shutdown()
    path = HERE / f"{name}.json"
    path.write_text(history.to_json())
    log.info("history saved", path=str(path), events=len(history.events))
    return path


# ------------------------------------------------------------ driven scenarios
# Paths that need the run to be steered from outside (a signal at the right moment), a
# config knob, or the store. Each writes `<name>.json` (and the continued run its later
# execution too); tests/workflow/test_replay.py replays them all.


async def _env() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=shutil.which("temporal-test-server"),
    )
    await ensure_search_attributes(env.client)
    return env


def _save(name: str, history: WorkflowHistory) -> Path:
    path = HERE / f"{name}.json"
    path.write_text(history.to_json())
    log.info("history saved", path=str(path), events=len(history.events))
    return path


async def _at_step(handle: WorkflowHandle[Any, Any], step_id: str) -> None:
    for _ in range(600):
        state = await handle.query(TaskRunWorkflow.state)
        if state.current_step == step_id:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the run never reached {step_id}")


async def _model_call_running(handle: WorkflowHandle[Any, Any]) -> None:
    for _ in range(600):
        desc = await handle.describe()
        if any(pa.activity_type.name == contracts.LLM_ACTIVITY
               and pa.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
               for pa in desc.raw_description.pending_activities):  # fmt: skip
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the model call never started")


async def record_continue_as_new_between_steps() -> None:
    """Two steps, the history threshold forced to one event: the second step starts in a
    new execution. Saved: the first execution (ends in the continue-as-new command) and
    the second (starts from the carried run)."""
    env = await _env()
    try:
        defn = definition(
            [{"id": "first", "action": "llm_call", "prompt": "one"},
             {"id": "second", "action": "llm_call", "prompt": "{{ steps.first.output }} two"}],
            id="can-between-steps",
        )  # fmt: skip
        inp = run_input(defn)
        inp.config.continue_as_new_history_events = 1
        async with make_worker(env.client, "record-can", settings=SETTINGS):
            handle = await start(env.client, "record-can", inp, id="run-can_between_steps")
            await handle.result()
        run = handle.first_execution_run_id
        first = await env.client.get_workflow_handle(handle.id, run_id=run).fetch_history()
        last = await env.client.get_workflow_handle(handle.id).fetch_history()
    finally:
        await env.shutdown()
    _save("can_between_steps", first)
    _save("can_between_steps_resumed", last)


async def record_steer() -> None:
    """A steer cancels the in-flight model call, which restarts with the message."""
    env = await _env()
    try:
        defn = definition(
            [{"id": "agent", "action": "llm_call", "prompt": "Do the job.",
              "model": {"provider": "scripted", "name": "script",
                        "script": [{"text": "answer", "delay": 60}]}}],
            id="steer",
        )  # fmt: skip
        async with make_worker(env.client, "record-steer", settings=SETTINGS):
            handle = await start(env.client, "record-steer", run_input(defn), id="run-steer")
            await _model_call_running(handle)
            steer = Intervention(mode="steer", message="Focus on the budget.", sender="alice")
            await handle.signal(TaskRunWorkflow.intervene, steer)
            await handle.result()
        _save("steer", await handle.fetch_history())
    finally:
        await env.shutdown()


async def record_approval_reminder_timeout() -> None:
    """Nobody decides: two reminders, then the timeout decides (`on_timeout: reject`)."""
    env = await _env()
    try:
        defn = definition(
            [{"id": "review", "action": "approval", "approvers": ["lead@example.com"],
              "prompt": "Ship this?", "timeout": "3h", "reminder": "1h",
              "on_timeout": "reject"}],
            id="approval-reminder-timeout",
        )  # fmt: skip
        async with make_worker(env.client, "record-approval", settings=SETTINGS):
            handle = await start(
                env.client, "record-approval", run_input(defn), id="run-approval_reminder_timeout"
            )
            with contextlib.suppress(WorkflowFailureError):
                await handle.result()
        _save("approval_reminder_timeout", await handle.fetch_history())
    finally:
        await env.shutdown()


async def record_wait_until() -> None:
    """`wait: until:` a rendered ISO 8601 time: one durable timer to that moment."""
    env = await _env()
    try:
        defn = definition(
            [{"id": "later", "action": "wait", "until": "{{ input.when }}"},
             {"id": "after", "action": "llm_call", "prompt": "woke at {{ run.now }}"}],
            id="wait-until",
            inputs={"when": {"type": "string", "required": True}},
        )  # fmt: skip
        inp = run_input(defn, {"when": "2031-01-01T09:00:00Z"})
        async with make_worker(env.client, "record-wait", settings=SETTINGS):
            handle = await start(env.client, "record-wait", inp, id="run-wait_until")
            await handle.result()
        _save("wait_until", await handle.fetch_history())
    finally:
        await env.shutdown()


async def record_unpinned_scheduled_run() -> None:
    """A schedule following the latest version: the bundle is resolved by the store
    activity before the first step."""
    env = await _env()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/s.db")
        try:
            await migrate(engine)
            store = DefinitionStore(engine)
            await store.put(definition([{"id": "a", "action": "llm_call", "prompt": "v1"}],
                                       id="greet"))  # fmt: skip
            inp = RunInput(
                definition_id="greet",
                meta=RunMeta(trigger=Trigger.schedule, schedule_id="sched-greet"),
            )
            async with make_worker(env.client, "record-unpinned", store=store, settings=SETTINGS):
                handle = await start(
                    env.client, "record-unpinned", inp, id="run-unpinned_scheduled_run"
                )
                await handle.result()
            _save("unpinned_scheduled_run", await handle.fetch_history())
        finally:
            await engine.dispose()
            await env.shutdown()


async def record_priority_change() -> None:
    """`set_priority` while the run waits: later steps are scheduled at the new priority."""
    env = await _env()
    try:
        defn = definition(
            [{"id": "nap", "action": "wait", "duration": "1h"},
             {"id": "after", "action": "llm_call", "prompt": "now urgent"}],
            id="priority-change",
        )  # fmt: skip
        async with make_worker(env.client, "record-priority", settings=SETTINGS):
            handle = await start(
                env.client, "record-priority", run_input(defn), id="run-priority_change"
            )
            await _at_step(handle, "nap")
            await handle.signal(
                TaskRunWorkflow.set_priority, PriorityChange(priority=Priority.urgent)
            )
            await handle.result()
        _save("priority_change", await handle.fetch_history())
    finally:
        await env.shutdown()


async def _status(handle: WorkflowHandle[Any, Any], status: str) -> None:
    for _ in range(600):
        if (await handle.query(TaskRunWorkflow.state)).status.value == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the run never became {status}")


async def record_budget_raised() -> None:
    """A run budget reached with `on_budget: approve`: the run waits, an approver's
    `raise_budget` Update lets it go on (docs/models-and-tools.md#budgets)."""
    env = await _env()
    try:
        defn = definition(
            [{"id": "one", "action": "llm_call", "prompt": "Hi there friend"},
             {"id": "two", "action": "llm_call", "prompt": "again {{ steps.one.output }}"}],
            id="budget-raised", limits={"max_tokens": 4, "on_budget": "approve"},
        )  # fmt: skip
        async with make_worker(env.client, "record-budget", settings=SETTINGS):
            handle = await start(env.client, "record-budget", run_input(defn),
                                 id="run-budget_raised")  # fmt: skip
            await _status(handle, "awaiting_approval")
            raise_ = BudgetRaise(max_tokens=1000, by="lead")
            signed = proofs.sign_raise(
                APPROVAL_KEY.encode(),
                handle.id,
                raise_,
                nonce=uuid.uuid4().hex,
                issued_at=await _clock(handle),
            )
            await handle.execute_update(TaskRunWorkflow.raise_budget, signed)  # fmt: skip
            await handle.result()
        _save("budget_raised", await handle.fetch_history())
    finally:
        await env.shutdown()


async def _clock(handle: WorkflowHandle[Any, Any]) -> datetime:
    """The run's clock (the time-skipping server's runs ahead of the wall clock)."""
    return (await handle.query(TaskRunWorkflow.state)).events[-1].time


async def record_approval_edited() -> None:
    """An approval with an edit (docs/approvals.md#approving-with-an-edit): a raw signal
    carrying an edit without a proof is refused (recorded), then a signed `decide` with an
    edit replaces `draft`'s output, which `ship` then sees."""
    env = await _env()
    try:
        defn = definition(
            [{"id": "draft", "action": "llm_call", "prompt": "Notes for {{ input.v }}"},
             {"id": "review", "action": "approval", "approvers": ["lead@example.com"],
              "prompt": "Ship? {{ steps.draft.output }}"},
             {"id": "ship", "action": "llm_call", "prompt": "Ship: {{ steps.draft.output }}"}],
            id="approval-edited", inputs={"v": {"type": "string", "default": "1.0"}},
        )  # fmt: skip
        async with make_worker(env.client, "record-edit", settings=KEYED):
            handle = await start(env.client, "record-edit", run_input(defn),
                                 id="run-approval_edited")  # fmt: skip
            await _status(handle, "awaiting_approval")
            forged = ApprovalDecision(decision="approve", approver="lead@example.com",
                                      output="Notes for 6.6.6")  # fmt: skip
            await handle.signal(TaskRunWorkflow.approve, forged)
            plain = forged.model_copy(update={"output": "Corrected notes for 1.0"})
            signed = proofs.sign(APPROVAL_KEY.encode(), handle.id, plain, step_id="review",
                                 nonce=uuid.uuid4().hex, issued_at=await _clock(handle))  # fmt: skip
            await handle.execute_update(TaskRunWorkflow.decide, signed)
            await handle.result()
        _save("approval_edited", await handle.fetch_history())
    finally:
        await env.shutdown()


async def record_input_step() -> None:
    """An `input` step: a refused value (not in history), then a valid one."""
    env = await _env()
    try:
        schema = {"type": "object", "properties": {"name": {"type": "string"},
                  "n": {"type": "integer", "default": 2}}, "required": ["name"]}  # fmt: skip
        defn = definition(
            [{"id": "ask", "action": "input", "schema": schema, "prompt": "Name?"},
             {"id": "use", "action": "llm_call", "prompt": "hi {{ steps.ask.output.name }}"}],
            id="input-step",
        )  # fmt: skip
        async with make_worker(env.client, "record-input", settings=SETTINGS):
            handle = await start(env.client, "record-input", run_input(defn),
                                 id="run-input_step")  # fmt: skip
            await _status(handle, "awaiting_input")
            with contextlib.suppress(Exception):
                await handle.execute_update(
                    TaskRunWorkflow.submit_input, InputSubmission(step_id="ask", value={"n": 1})
                )
            await handle.execute_update(
                TaskRunWorkflow.submit_input,
                InputSubmission(step_id="ask", value={"name": "Ada"}, by="wes"),
            )
            await handle.result()
        _save("input_step", await handle.fetch_history())
    finally:
        await env.shutdown()


async def record_input_delivered() -> None:
    """An `input` step that sends its request to the owner and team (the notify activity,
    patch `input-delivery`) before it waits, with a timeout; then a valid value."""
    env = await _env()
    try:
        schema = {"type": "object", "properties": {"name": {"type": "string"}},
                  "required": ["name"]}  # fmt: skip
        defn = definition(
            [{"id": "ask", "action": "input", "schema": schema, "prompt": "Name?",
              "timeout": "1h"},
             {"id": "use", "action": "llm_call", "prompt": "hi {{ steps.ask.output.name }}"}],
            id="input-delivered",
        )  # fmt: skip
        async with make_worker(env.client, "record-input-delivered", settings=SETTINGS):
            handle = await start(env.client, "record-input-delivered",
                                 run_input(defn, owner="wes", team="blue"),
                                 id="run-input_delivered")  # fmt: skip
            await _status(handle, "awaiting_input")
            await handle.execute_update(
                TaskRunWorkflow.submit_input,
                InputSubmission(step_id="ask", value={"name": "Ada"}, by="wes"),
            )
            await handle.result()
        _save("input_delivered", await handle.fetch_history())
    finally:
        await env.shutdown()


async def record_rerun_reused() -> None:
    """A re-run from `three`: `one` and `two` reused (no activity), the rest executed."""
    env = await _env()
    try:
        defn = definition(
            [{"id": "one", "action": "llm_call", "prompt": "one"},
             {"id": "two", "action": "conditional", "condition": "true", "then": "three"},
             {"id": "three", "action": "llm_call", "prompt": "three {{ steps.one.output }}"}],
            id="rerun-reused",
        )  # fmt: skip
        inp = run_input(defn, rerun_of="run-original", rerun_from="three")
        inp.reused = {"one": "one", "two": {"result": True, "next": "three"}}
        async with make_worker(env.client, "record-rerun", settings=SETTINGS):
            handle = await start(env.client, "record-rerun", inp, id="run-rerun_reused")
            await handle.result()
        _save("rerun_reused", await handle.fetch_history())
    finally:
        await env.shutdown()


async def record_daily_budget() -> None:
    """Daily budgets: each model call recorded in the store by an activity."""
    env = await _env()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/s.db")
        try:
            await migrate(engine)
            store = DefinitionStore(engine)
            defn = definition([{"id": "a", "action": "llm_call", "prompt": "a b c"}],
                              id="daily-budget")  # fmt: skip
            inp = run_input(defn, owner="wes")
            inp.config.daily_per_owner = DailyLimits(max_tokens=100_000)
            async with make_worker(env.client, "record-daily", store=store, settings=SETTINGS):
                handle = await start(env.client, "record-daily", inp, id="run-daily_budget")
                await handle.result()
            _save("daily_budget", await handle.fetch_history())
        finally:
            await engine.dispose()
            await env.shutdown()


async def record_usage_estimated() -> None:
    """A model server that reports no usage (a llama.cpp stream, replayed): the run's
    usage is estimated, and its end sets `DurataskUsageEstimated` behind a patch."""
    from duratask.settings import ModelEndpoint
    from tests.fakes.openai_server import serve_fake_llm

    env = await _env()
    try:
        async with serve_fake_llm() as fake:
            endpoint = ModelEndpoint(kind="openai", base_url=f"{fake.url}/v1")
            settings = Settings(_env_file=None, model_endpoints={"local": endpoint},  # type: ignore[call-arg]
                                default_endpoint="local")  # fmt: skip
            defn = definition([{"id": "ask", "action": "llm_call", "prompt": "hi",
                                "model": {"endpoint": "local", "name": "replay-llamacpp_text"}}],
                              id="usage-estimated")  # fmt: skip
            async with make_worker(env.client, "record-usage", settings=settings):
                handle = await start(env.client, "record-usage", run_input(defn),
                                     id="run-usage_estimated")  # fmt: skip
                state = await handle.result()
            assert state.usage.estimated, state.usage
        _save("usage_estimated", await handle.fetch_history())
    finally:
        await env.shutdown()


async def record_health_check() -> None:
    """The scheduled definition health check (HealthCheckWorkflow) over a definition
    whose last two runs failed: the real activity reads visibility (so a dev server, not
    the time-skipping one) and the store, and answers a `regression` verdict."""
    from tests.conftest import DEV_SERVER_ARGS
    from tests.stack import run_stack
    from workflows.contracts import SEARCH_ATTRIBUTES
    from workflows.health_check import HealthCheckInput, HealthCheckWorkflow

    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=shutil.which("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    boom = {"provider": "scripted", "name": "script",
            "script": [{"error": {"status": 400, "message": "bad request"}}]}  # fmt: skip
    failing = {"id": "flaky", "steps": [{"id": "boom", "action": "llm_call", "prompt": "x",
               "model": boom}], "regression": {"consecutive_failures": 2}}  # fmt: skip
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with run_stack(env, "record-health", Path(tmp)) as stack:
                await stack.put_definition(failing)
                for _ in range(2):
                    run = await stack.start("flaky")
                    await stack.wait_result(run["run_id"])
                result = await env.client.execute_workflow(
                    HealthCheckWorkflow.run,
                    HealthCheckInput(),
                    id="health-check-record",
                    task_queue="record-health",
                )
                assert result.not_healthy == {"flaky": "regression"}, result
                handle = env.client.get_workflow_handle("health-check-record")
                _save("health_check", await handle.fetch_history())
    finally:
        await env.shutdown()


async def record_tool_policy_approved() -> None:
    """A tool call a policy holds for approval: parked, approved (a signed decision),
    then run once (docs/approvals.md#tool-policies)."""
    env = await _env()
    try:
        script = [{"tool_calls": [{"id": "c1", "name": "lookup", "arguments": {"q": "close"}}]},
                  {"text": "closed"}]  # fmt: skip
        defn = definition(
            [{"id": "agent", "action": "llm_call", "prompt": "Close it.",
              "model": {"provider": "scripted", "name": "script", "script": script}}],
            id="tool-policy-approved", tools=["lookup"],
            tool_policies=[{"tool": "lookup", "when": "args.q == 'close'", "action": "approve",
                            "approvers": ["lead@example.com"], "timeout": "1h"}],
        )  # fmt: skip
        settings = Settings(_env_file=None, approval_key=SecretStr(APPROVAL_KEY))  # type: ignore[call-arg]
        acts = [LlmActivities(settings, build_registry(settings)).complete,
                NotifyActivities(settings).notify, lookup]  # fmt: skip
        async with make_worker(env.client, "record-toolpol", settings=settings, activities=acts):
            handle = await start(env.client, "record-toolpol", run_input(defn),
                                 id="run-tool_policy_approved")  # fmt: skip
            await _status(handle, "awaiting_approval")
            state = await handle.query(TaskRunWorkflow.state)
            asked = datetime.fromisoformat(state.pending_approvals[0]["requested_at"])
            plain = ApprovalDecision(decision="approve", approver="lead@example.com")
            signed = proofs.sign(APPROVAL_KEY.encode(), handle.id, plain, step_id="agent",
                                 nonce=uuid.uuid4().hex, issued_at=asked)  # fmt: skip
            await handle.execute_update(TaskRunWorkflow.decide, signed)
            await handle.result()
        _save("tool_policy_approved", await handle.fetch_history())
    finally:
        await env.shutdown()


async def record_cancel_reason_to_children() -> None:
    """A run cancelled with a reason and no reason signal, two levels of sub-tasks below
    it: each child's cancel carries the reason. Saved: the top run and its middle child
    (a child whose own child it cancels in turn)."""
    env = await _env()
    try:
        slow = definition([{"id": "slow", "action": "wait", "duration": "30d"}], id="slow")
        middle = definition([{"id": "deeper", "action": "sub_task", "task": "slow"}],
                            id="middle")  # fmt: skip
        top = definition([{"id": "nest", "action": "sub_task", "task": "middle"}], id="top")
        async with make_worker(env.client, "record-cancel-reason", settings=SETTINGS):
            handle = await start(env.client, "record-cancel-reason",
                                 run_input(top, others=[middle, slow]),
                                 id="run-cancel_reason_to_children")  # fmt: skip
            nest = env.client.get_workflow_handle(f"{handle.id}/nest")
            deeper = env.client.get_workflow_handle(f"{handle.id}/nest/deeper")
            for _ in range(600):
                with contextlib.suppress(Exception):
                    await deeper.describe()
                    break
                await asyncio.sleep(0.05)
            await handle.cancel(reason="superseded")
            with contextlib.suppress(WorkflowFailureError):
                await handle.result()
            with contextlib.suppress(WorkflowFailureError):
                await nest.result()
        _save("cancel_reason_to_children", await handle.fetch_history())
        _save("cancel_reason_to_children_middle", await nest.fetch_history())
    finally:
        await env.shutdown()


async def record_rate_limit_wait() -> None:
    """An endpoint limited to one request a window: the second step's call waits for its
    slot with a durable timer (docs/models-and-tools.md#rate-limits)."""
    from activities.llm.activity import LlmActivities as Llm
    from duratask.settings import ModelEndpoint
    from duratask.store.rate_limits import RateLimiter
    from tests.fakes.openai_server import serve_fake_llm

    env = await _env()
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/s.db")
        try:
            await migrate(engine)
            async with serve_fake_llm() as fake:
                endpoint = ModelEndpoint(base_url=f"{fake.url}/v1", default_model="text",
                                         requests_per_minute=1)  # fmt: skip
                settings = Settings(model_endpoints={"limited": endpoint},  # type: ignore[call-arg]
                                    rate_limit_inline_wait_s=0, _env_file=None)  # fmt: skip
                llm = Llm(settings, limiter=RateLimiter(engine, window_s=3.0))
                defn = definition(
                    [{"id": "a", "action": "llm_call", "prompt": "one"},
                     {"id": "b", "action": "llm_call", "prompt": "two"}],
                    id="rate-limit-wait", model={"endpoint": "limited"},
                )  # fmt: skip
                async with make_worker(env.client, "record-rl", settings=settings,
                                       activities=[llm.complete]):  # fmt: skip
                    handle = await start(env.client, "record-rl", run_input(defn, {}),
                                         id="run-rate_limit_wait")  # fmt: skip
                    state = await handle.result()
                assert any(e.type == "llm.waiting_for_rate_limit" for e in state.events), state
            _save("rate_limit_wait", await handle.fetch_history())
        finally:
            await engine.dispose()
            await env.shutdown()


DRIVEN = {
    "usage_estimated": record_usage_estimated,
    "tool_policy_approved": record_tool_policy_approved,
    "approval_edited": record_approval_edited,
    "rate_limit_wait": record_rate_limit_wait,
    "budget_raised": record_budget_raised,
    "input_step": record_input_step,
    "input_delivered": record_input_delivered,
    "rerun_reused": record_rerun_reused,
    "daily_budget": record_daily_budget,
    "can_between_steps": record_continue_as_new_between_steps,
    "steer": record_steer,
    "approval_reminder_timeout": record_approval_reminder_timeout,
    "wait_until": record_wait_until,
    "unpinned_scheduled_run": record_unpinned_scheduled_run,
    "priority_change": record_priority_change,
    "health_check": record_health_check,
    "cancel_reason_to_children": record_cancel_reason_to_children,
}


async def main(names: list[str]) -> None:
    """Record the named scenarios (all of them when none is named)."""
    unknown = set(names) - set(SCENARIOS) - set(DRIVEN)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}: {sorted([*SCENARIOS, *DRIVEN])}")
    for name, scenario in SCENARIOS.items():
        if not names or name in names:
            await record(name, scenario)
    for name, fn in DRIVEN.items():
        if not names or name in names:
            await fn()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
