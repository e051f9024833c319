"""Regenerate the saved run histories that tests/workflow/test_replay.py replays.

    python -m tests.histories.record [SCENARIO ...]

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
import uuid
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.llm.activity import LlmActivities
from activities.notify import NotifyActivities
from activities.tools.registry import build_registry
from duratask.logging import get_logger
from duratask.settings import Settings
from tests.helpers import definition, make_worker, run_input, start
from worker.client import ensure_search_attributes
from workflows import contracts
from workflows.models import ToolRequest, ToolResult

log = get_logger(__name__)
HERE = Path(__file__).parent

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
    "cancelled_mid_activity": {
        "steps": [{"id": "work", "action": "tool_call", "tool": "lookup",
                   "args": {"hang": True}}],
        "tools": ["lookup"],
        "input": {},
        "cancel": True,
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
}  # fmt: skip

STARTED = asyncio.Event()


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


async def _model_call_running(handle: Any) -> None:
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
        ]
        tq = f"record-{uuid.uuid4().hex[:8]}"
        spec = dict(spec)
        given = spec.pop("input")
        cancel = spec.pop("cancel", False)
        defn = definition(spec.pop("steps"), id=name.replace("_", "-"), **spec)
        async with make_worker(env.client, tq, settings=settings, activities=acts):
            handle = await start(env.client, tq, run_input(defn, given), id=f"run-{name}")
            if cancel == "model_call":
                await asyncio.wait_for(_model_call_running(handle), 30)
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


async def main(names: list[str]) -> None:
    for name, spec in SCENARIOS.items():
        if not names or name in names:
            await record(name, spec)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
