"""Tool policies on the time-skipping server: a held call runs once after approval, a
refused or timed-out one reaches the model as a tool error, deny rules never park,
organisation rules come first, and a failing `when` fails the step (not the task).

The agent is the scripted model; the tool is a stand-in `duratask.tool.call` activity
that counts its calls (the real `http_request` is exercised on the real stack in
tests/integration/test_tool_policies.py).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from activities.llm.activity import LlmActivities
from activities.notify import NotifyActivities
from activities.tools.registry import build_registry
from duratask.settings import Settings
from tests.helpers import APPROVAL_KEY, definition, make_worker, run_input, start
from tests.workflow.test_approvals import decide
from workflows import contracts, proofs
from workflows.definition import ToolPolicy
from workflows.models import RunState, ToolRequest, ToolResult
from workflows.run_workflow import TaskRunWorkflow

LEAD = "lead@example.com"
HISTORY = Path(__file__).parent.parent / "histories" / "tool_policy_approved.json"
CALLS: list[dict[str, Any]] = []


@activity.defn(name=contracts.TOOL_ACTIVITY)
async def transfer(req: ToolRequest) -> ToolResult:
    CALLS.append({"tool": req.tool, "args": req.args, "key": req.idempotency_key})
    return ToolResult(output={"done": True, "amount": req.args.get("amount")})


def agent_def(rules: list[dict[str, Any]], amount: int = 5000, **extra: Any) -> Any:
    script = [
        {"tool_calls": [{"id": "t1", "name": "transfer",
                         "arguments": {"amount": amount, "to": "acme",
                                       "headers": {"Authorization": "Bearer sk-abcdefghijklmnop"}}}]},
        {"text": "finished"},
    ]  # fmt: skip
    return definition(
        [{"id": "pay", "action": "llm_call", "prompt": "Pay acme.",
          "model": {"provider": "scripted", "name": "script", "script": script}}],
        id="pay-agent", tools=["transfer"], tool_policies=rules, **extra,
    )  # fmt: skip


APPROVE_BIG = {
    "tool": "transfer",
    "when": "args.amount > 1000",
    "action": "approve",
    "approvers": [LEAD, "bob"],
    "timeout": "1h",
}


def worker(client: Client, tq: str) -> Any:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    registry = build_registry(settings)
    acts = [LlmActivities(settings, registry).complete, NotifyActivities(settings).notify, transfer]
    return make_worker(client, tq, activities=acts)


async def parked(handle: WorkflowHandle[Any, Any]) -> RunState:
    for _ in range(300):
        state: RunState = await handle.query(TaskRunWorkflow.state)
        if state.status == "awaiting_approval":
            return state
        await asyncio.sleep(0.1)
    raise AssertionError("the run never parked")


def tool_message(state: RunState) -> str:
    """The tool result the model received in its next turn (the step's conversation)."""
    convo = state.steps[0].conversation
    return next(m.content or "" for m in convo if m.role == "tool")


def types(state: RunState) -> list[str]:
    return [str(e.type) for e in state.events]


async def test_held_call_runs_once_after_two_approvals(ts_client: Client, task_queue: str) -> None:
    CALLS.clear()
    rule = {**APPROVE_BIG, "min_approvals": 2}
    async with worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(agent_def([rule])))
        state = await parked(handle)
        pending = state.pending_approvals[0]
        assert pending["kind"] == "tool_call"
        assert pending["tool"]["name"] == "transfer"
        assert pending["tool"]["arguments"]["amount"] == 5000
        assert pending["tool"]["arguments"]["headers"]["Authorization"] == "***"  # redacted
        shown = [e.model_dump(mode="json") for e in state.events if "approval" in e.type]
        assert "sk-abcdefghijklmnop" not in json.dumps([state.pending_approvals, shown])
        assert CALLS == []  # held: the tool has not run
        await decide(handle, "approve", LEAD)
        await decide(handle, "approve", LEAD.upper())  # the same approver again: once
        for _ in range(50):
            state = await handle.query(TaskRunWorkflow.state)
            if "approval.duplicate" in types(state):
                break
            await asyncio.sleep(0.1)
        assert state.status == "awaiting_approval" and CALLS == []
        await decide(handle, "approve", "bob")
        final: RunState = await handle.result()
    assert len(CALLS) == 1 and CALLS[0]["args"]["amount"] == 5000
    assert final.result == "finished"
    assert json.loads(tool_message(final)) == {"amount": 5000, "done": True}
    decided = [e for e in final.events if e.type == "run.tool_approval_decided"]
    assert len(decided) == 1
    assert decided[0].data["decision"] == "approve"
    assert sorted(decided[0].data["approvers"]) == ["bob", LEAD]
    assert "run.tool_approval_requested" in types(final)
    assert final.pending_approvals == []


async def test_rejected_call_is_a_tool_error_the_model_sees(
    ts_client: Client, task_queue: str
) -> None:
    CALLS.clear()
    async with worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(agent_def([APPROVE_BIG])))
        await parked(handle)
        await decide(handle, "reject", "bob", comment="not this month")
        final: RunState = await handle.result()
    assert CALLS == []
    seen = json.loads(tool_message(final))
    assert "rejected by bob: not this month" in seen["error"]
    assert final.result == "finished"  # the model went on after the refusal
    decided = next(e for e in final.events if e.type == "run.tool_approval_decided")
    assert decided.data["decision"] == "reject" and decided.data["decided_by"] == "bob"


async def test_timeout_refuses_the_call(ts_client: Client, task_queue: str) -> None:
    CALLS.clear()
    async with worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(agent_def([APPROVE_BIG])))
        await parked(handle)
        final: RunState = await handle.result()  # time skips past the 1h timeout
    assert CALLS == []
    assert "not approved within 1h" in json.loads(tool_message(final))["error"]
    decided = next(e for e in final.events if e.type == "run.tool_approval_decided")
    assert decided.data["timed_out"] is True and decided.data["decided_by"] == "timeout"


async def test_small_amount_and_deny_rules_do_not_park(ts_client: Client, task_queue: str) -> None:
    CALLS.clear()
    deny = {"tool": "trans*", "when": "args.to == 'acme'", "action": "deny",
            "reason": "acme is blocked"}  # fmt: skip
    async with worker(ts_client, task_queue):
        small = await start(ts_client, task_queue, run_input(agent_def([APPROVE_BIG], amount=10)))
        out: RunState = await small.result()
        assert len(CALLS) == 1 and "awaiting_approval" not in json.dumps(types(out))
        denied = await start(ts_client, task_queue, run_input(agent_def([deny, APPROVE_BIG])))
        final: RunState = await denied.result()
    assert len(CALLS) == 1  # the denied call never ran
    assert "acme is blocked" in json.loads(tool_message(final))["error"]
    assert "run.awaiting_approval" not in types(final)
    decided = next(e for e in final.events if e.type == "run.tool_approval_decided")
    assert decided.data["decided_by"] == "policy"
    assert decided.data["policy"] == "definition.tool_policies[0]"


async def test_organisation_rules_come_first(ts_client: Client, task_queue: str) -> None:
    CALLS.clear()
    inp = run_input(agent_def([{"tool": "transfer", "action": "allow"}]))
    inp.config.tool_policies = [ToolPolicy(tool="*", when="tool == 'transfer'", action="deny")]
    async with worker(ts_client, task_queue):
        final: RunState = await (await start(ts_client, task_queue, inp)).result()
    assert CALLS == []
    assert "settings.tool_policies[0]" in json.loads(tool_message(final))["error"]


async def test_failing_when_fails_the_step(ts_client: Client, task_queue: str) -> None:
    CALLS.clear()
    rule = {"tool": "transfer", "when": "args.currency == 'EUR'", "action": "deny"}
    async with worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(agent_def([rule])))
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 60)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == contracts.E_TOOL_POLICY
    assert "definition.tool_policies[0].when" in cause.message
    assert CALLS == []


async def test_held_calls_of_one_reply_are_decided_one_after_another(
    ts_client: Client, task_queue: str
) -> None:
    CALLS.clear()
    script = [
        {"tool_calls": [{"id": "a", "name": "transfer", "arguments": {"amount": 2000, "to": "x"}},
                        {"id": "b", "name": "transfer", "arguments": {"amount": 3000, "to": "y"}}]},
        {"text": "finished"},
    ]  # fmt: skip
    defn = definition(
        [{"id": "pay", "action": "llm_call", "prompt": "Pay both.",
          "model": {"provider": "scripted", "name": "script", "script": script}}],
        id="pay-two", tools=["transfer"], tool_policies=[APPROVE_BIG],
    )  # fmt: skip
    async with worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(defn))
        first = (await parked(handle)).pending_approvals
        assert len(first) == 1
        await decide(handle, "approve", LEAD)
        for _ in range(100):  # the second call parks once the first is decided
            state: RunState = await handle.query(TaskRunWorkflow.state)
            waiting = state.pending_approvals
            if waiting and waiting[0]["tool"]["call_id"] != first[0]["tool"]["call_id"]:
                break
            await asyncio.sleep(0.1)
        assert waiting, "the second held call never parked"
        assert waiting[0]["tool"]["arguments"]["amount"] != first[0]["tool"]["arguments"]["amount"]
        await decide(handle, "reject", "bob")
        final: RunState = await handle.result()
    assert len(CALLS) == 1  # the approved one ran, the rejected one did not
    results = [m.content or "" for m in final.steps[0].conversation if m.role == "tool"]
    assert len(results) == 2 and sum("rejected by bob" in r for r in results) == 1


async def test_saved_tool_approval_history_replays() -> None:
    """Recorded by `python -m tests.histories.record tool_policy_approved`."""
    proofs.install_keys([APPROVAL_KEY])
    history = WorkflowHistory.from_json("run-tool_policy_approved", HISTORY.read_text())
    replayer = Replayer(workflows=[TaskRunWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
