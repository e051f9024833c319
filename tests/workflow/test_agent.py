"""The agent loop on the time-skipping server: tools, limits, retries, interventions,
plan tracking, continue-as-new and a worker crash, driven by the `scripted` model.

Side effects are counted by idempotency key in tests/fakes/tools.py (loaded through
`tool_modules`, as users load theirs), so "done once" is measured, not assumed.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.worker import Replayer

from duratask.settings import Settings
from tests.fakes import tools as fake_tools
from tests.helpers import definition, make_worker, run_input, start
from workflows import contracts
from workflows.models import Intervention, RunInput, RunState, pending_bundle
from workflows.run_workflow import TaskRunWorkflow

SETTINGS = Settings(
    tool_modules=["tests.fakes.tools"],
    shutdown_grace_s=0.5,
    _env_file=None,  # type: ignore[call-arg]
)
FAST_RETRY = {"max_attempts": 5, "initial_interval": 0.1, "max_interval": 0.5}


def agent_input(
    script: list[Any], tools: tuple[str, ...] = ("record", "flaky_record", "add", "plan"),
    **step: Any,
) -> RunInput:  # fmt: skip
    defn = definition(
        [{"id": "agent", "action": "llm_call", "prompt": "Do the job.", "retry": FAST_RETRY,
          "model": {"provider": "scripted", "name": "script", "script": script}, **step}],
        tools=list(tools),
    )  # fmt: skip
    return run_input(defn)


def call(name: str, id: str, **args: Any) -> dict[str, Any]:
    return {"id": id, "name": name, "arguments": args}


def effects_for(handle: WorkflowHandle[Any, Any]) -> dict[str, int]:
    return {k: v for k, v in fake_tools.EFFECTS.items() if k.startswith(handle.id + "/")}


async def llm_requests(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """Every LlmRequest the workflow scheduled, decoded from history."""
    out = []
    async for ev in handle.fetch_history_events():
        if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = ev.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == contracts.LLM_ACTIVITY:
                out.append(json.loads(attrs.input.payloads[0].data))
    return out


async def wait_model_call_started(handle: WorkflowHandle[Any, Any], calls: int = 0) -> None:
    for _ in range(600):
        desc = await handle.describe()
        for pa in desc.raw_description.pending_activities:
            if (
                pa.activity_type.name == contracts.LLM_ACTIVITY
                and pa.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            ):
                state = await handle.query(TaskRunWorkflow.state)
                if state.step("agent").model_calls >= calls:
                    return
        await asyncio.sleep(0.05)
    raise AssertionError("the model call never started")


async def replays(handle: WorkflowHandle[Any, Any]) -> None:
    """The saved history replays against today's workflow code without nondeterminism."""
    replayer = Replayer(workflows=[TaskRunWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(await handle.fetch_history())


def roles(state: RunState) -> list[str]:
    return [m.role for m in state.step("agent").conversation]


async def test_parallel_tool_calls_then_answer(ts_client: Client, task_queue: str) -> None:
    script = [
        {"tool_calls": [call("record", "a", note="one"), call("record", "b", note="two")]},
        {"text": "both recorded"},
    ]
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, agent_input(script))
        state: RunState = await handle.result()
    assert state.result == "both recorded"
    assert roles(state) == ["user", "assistant", "tool", "tool", "assistant"]
    tool_msgs = [m for m in state.step("agent").conversation if m.role == "tool"]
    assert [json.loads(m.content or "")["recorded"] for m in tool_msgs] == ["one", "two"]
    assert sorted(effects_for(handle).values()) == [1, 1]
    # both tool activities were scheduled together, before either completed
    kinds = []
    async for ev in handle.fetch_history_events():
        if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            kinds.append(ev.activity_task_scheduled_event_attributes.activity_type.name)
        elif ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            kinds.append("completed")
    assert kinds[:5] == [contracts.LLM_ACTIVITY, "completed",
                         contracts.TOOL_ACTIVITY, contracts.TOOL_ACTIVITY, "completed"]  # fmt: skip


async def test_conversation_in_state_is_bounded(ts_client: Client, task_queue: str) -> None:
    long = "word " * 1000
    inp = agent_input([{"tool_calls": [call("add", "a", a=1, b=2)]}, {"text": long}])
    inp.config.max_conversation_chars = 100
    inp.config.max_conversation_messages = 3
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        state: RunState = await (await start(ts_client, task_queue, inp)).result()
    assert state.result == long  # the output itself is whole
    conv = state.step("agent").conversation
    assert [m.role for m in conv] == ["assistant", "tool", "assistant"]  # the latest 3
    assert conv[-1].content == long[:100] + " [...]"
    assert conv[0].tool_calls[0].name == "add"


THINKING = [
    {"text": f"thinking {i}", "tool_calls": [call("add", f"c{i}", a=i, b=1)]} for i in range(4)
]


async def test_max_steps_fails_the_step(ts_client: Client, task_queue: str) -> None:
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, agent_input(THINKING, max_steps=2))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await handle.query(TaskRunWorkflow.state)
    err = state.step("agent").error
    assert err is not None and err.code == contracts.E_MAX_STEPS
    assert "max_steps=2" in err.message
    assert state.step("agent").model_calls == 2


async def test_max_steps_last_answer(ts_client: Client, task_queue: str) -> None:
    inp = agent_input(THINKING, max_steps=2, on_max_steps="last_answer")
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        state: RunState = await (await start(ts_client, task_queue, inp)).result()
    assert state.status == "completed"
    assert state.result == "thinking 1"


async def test_retryable_tool_failure_side_effect_once(ts_client: Client, task_queue: str) -> None:
    script = [{"tool_calls": [call("flaky_record", "f", note="x")]}, {"text": "ok"}]
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, agent_input(script))
        state: RunState = await handle.result()
    assert state.result == "ok"
    effects = effects_for(handle)
    assert list(effects.values()) == [1]
    (key,) = effects
    assert fake_tools.ATTEMPTS[key] == 2  # retried once, with the same idempotency key


async def test_unlisted_tool_is_an_error_fed_back_never_executed(
    ts_client: Client, task_queue: str
) -> None:
    script = [{"tool_calls": [call("record", "r", note="sneaky")]}, {"text": "gave up"}]
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, agent_input(script, tools=("add",)))
        state: RunState = await handle.result()
    assert state.result == "gave up"
    assert effects_for(handle) == {}
    tool_msg = state.step("agent").conversation[2]
    assert tool_msg.role == "tool" and "not allowed" in (tool_msg.content or "")
    requests = await llm_requests(handle)
    assert "not allowed" in requests[1]["messages"][2]["content"]


async def test_steer_cancels_the_in_flight_call(ts_client: Client, task_queue: str) -> None:
    script = [{"text": "answer", "delay": 60}]
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, agent_input(script))
        await wait_model_call_started(handle)
        t0 = time.monotonic()
        steer = Intervention(mode="steer", message="Focus on the budget.", sender="alice")
        await handle.signal(TaskRunWorkflow.intervene, steer)
        state: RunState = await handle.result()
    assert time.monotonic() - t0 < 30  # the 60 s call was cancelled, not waited for
    assert state.result == "answer"
    first, second = await llm_requests(handle)
    assert [m["content"] for m in first["messages"]] == ["Do the job."]
    assert second["messages"][-1] == {**second["messages"][-1], "role": "user",
                                      "content": "Focus on the budget."}  # fmt: skip
    assert second["steers"] == 1
    events = [e for e in state.events if e.type in ("intervention.received", "llm.steered")]
    assert [e.type for e in events] == ["intervention.received", "llm.steered"]
    assert events[0].data == {"mode": "steer", "sender": "alice"}
    await replays(handle)


async def test_collect_merges_messages_into_one_turn(ts_client: Client, task_queue: str) -> None:
    script = [{"text": "first answer", "delay": 3}, {"text": "merged answer"}]
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, agent_input(script))
        await wait_model_call_started(handle)
        for text in ("alpha", "beta", "gamma"):
            msg = Intervention(mode="collect", message=text, sender="bob")
            await handle.signal(TaskRunWorkflow.intervene, msg)
        state: RunState = await handle.result()
    assert state.result == "merged answer"
    conv = state.step("agent").conversation
    assert [(m.role, m.content) for m in conv] == [
        ("user", "Do the job."),
        ("assistant", "first answer"),
        ("user", "alpha\n\nbeta\n\ngamma"),
        ("assistant", "merged answer"),
    ]
    received = [e for e in state.events if e.type == "intervention.received"]
    assert [e.data["sender"] for e in received] == ["bob"] * 3


async def test_followups_make_new_turns(ts_client: Client, task_queue: str) -> None:
    script = [{"text": "one", "delay": 3}, {"text": "two"}, {"text": "three"}]
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, agent_input(script))
        await wait_model_call_started(handle)
        for text in ("and then?", "finally?"):
            msg = Intervention(mode="followup", message=text, sender="carol")
            await handle.signal(TaskRunWorkflow.intervene, msg)
        state: RunState = await handle.result()
    assert state.result == "three"
    assert [(m.role, m.content) for m in state.step("agent").conversation] == [
        ("user", "Do the job."), ("assistant", "one"), ("user", "and then?"),
        ("assistant", "two"), ("user", "finally?"), ("assistant", "three"),
    ]  # fmt: skip
    assert sum(1 for e in state.events if e.type == "agent.new_turn") == 2


async def test_plan_tracking_and_drift_alert(ts_client: Client, task_queue: str) -> None:
    script = [
        {"tool_calls": [call("plan", "p0", items=["gather", "analyse", "report"])]},
        {"tool_calls": [call("plan", "p1", done=[1])]},
        {"tool_calls": [call("add", "x1", a=1, b=1)]},
        {"tool_calls": [call("add", "x2", a=1, b=2)]},
        {"tool_calls": [call("add", "x3", a=1, b=3)]},
        {"tool_calls": [call("plan", "p2", done=[2, 3])]},
        {"text": "all done"},
    ]
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, agent_input(script))
        state: RunState = await handle.result()
    assert [(i.number, i.text, i.done) for i in state.agent_plan] == [
        (1, "gather", True), (2, "analyse", True), (3, "report", True),
    ]  # fmt: skip
    updates = [e for e in state.events if e.type == "plan.updated"]
    assert [[i["done"] for i in e.data["items"]] for e in updates] == [
        [False, False, False], [True, False, False], [True, True, True],
    ]  # fmt: skip
    alerts = [e for e in state.events if e.type == "drift.alert"]
    assert len(alerts) == 1 and alerts[0].data["next_item"] == 2
    requests = await llm_requests(handle)
    reminder = requests[5]["messages"][-1]
    assert reminder["role"] == "user" and reminder["content"].startswith("Reminder:")
    assert "Focus on step 2: analyse" in reminder["content"]
    assert "Reminder:" not in json.dumps(requests[4]["messages"])
    await replays(handle)


async def test_prose_numbered_list_is_an_answer_not_a_plan(
    ts_client: Client, task_queue: str
) -> None:
    """Issue 12 (4): a numbered list in an ordinary answer became the run's plan, and a
    later step got a "Reminder: Focus on step 1" injected into its conversation."""
    prose = [{"text": "Steps to bake bread:\n1. Mix flour\n2. Knead\n3. Bake"}]
    later: list[Any] = [{"tool_calls": [call("add", f"a{i}", a=i, b=i)]} for i in range(4)]
    later.append({"text": "sums done"})
    inp = run_input(
        definition(
            [
                {"id": "recipe", "action": "llm_call", "prompt": "how to bake bread?",
                 "model": {"provider": "scripted", "name": "script", "script": prose}},
                {"id": "sums", "action": "llm_call", "prompt": "add things",
                 "model": {"provider": "scripted", "name": "script", "script": later}},
            ],
            tools=["add", "plan"],
        )
    )  # fmt: skip
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, inp)
        state: RunState = await handle.result()
    assert state.status == "completed"
    assert state.agent_plan == []
    assert not [e for e in state.events if e.type in ("plan.updated", "drift.alert")]
    requests = await llm_requests(handle)
    assert "Reminder:" not in json.dumps(requests)
    await replays(handle)


async def test_plan_from_a_structured_reply(ts_client: Client, task_queue: str) -> None:
    """A step with `output: json` may answer with its plan in the reply."""
    script = [{"text": json.dumps({"plan": ["look", "answer"], "done": [1], "answer": 42})}]
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, agent_input(script, output="json"))
        state: RunState = await handle.result()
    assert [(i.text, i.done) for i in state.agent_plan] == [("look", True), ("answer", False)]
    assert state.step("agent").output["answer"] == 42


async def test_continue_as_new_keeps_the_conversation(ts_client: Client, task_queue: str) -> None:
    script: list[Any] = [{"tool_calls": [call("record", f"r{i}", note=f"n{i}")]} for i in range(5)]
    script.append({"text": "finished"})
    inp = agent_input(script)
    inp.config.continue_as_new_after_turns = 2
    async with make_worker(ts_client, task_queue, settings=SETTINGS):
        handle = await start(ts_client, task_queue, inp)
        state: RunState = await handle.result()
    assert state.result == "finished"
    assert state.continued_as_new == 2  # 6 model calls, 2 per execution
    conv = state.step("agent").conversation
    assert [json.loads(m.content or "")["recorded"] for m in conv if m.role == "tool"] == [
        f"n{i}" for i in range(5)
    ]
    assert state.step("agent").model_calls == 6
    assert sum(1 for e in state.events if e.type == "run.continued_as_new") == 2
    assert sum(1 for e in state.events if e.type == "step.started") == 1
    effects = effects_for(handle)
    assert len(effects) == 5 and set(effects.values()) == {1}
    # the last execution's history holds only its own calls, and it replays
    assert len(await llm_requests(handle)) == 2
    await replays(handle)


async def test_continue_as_new_carries_the_event_stream(
    dev_client: Client, task_queue: str
) -> None:
    """Watchers keep their offsets; the lifecycle is not re-announced; old items drop."""
    script: list[Any] = [{"tool_calls": [call("record", f"s{i}", note="x")]} for i in range(3)]
    script.append({"text": "streamed"})
    inp = agent_input(script)
    inp.config.continue_as_new_after_turns = 1
    async with make_worker(dev_client, task_queue, settings=SETTINGS):
        handle = await start(dev_client, task_queue, inp)
        stream = WorkflowStreamClient.create(dev_client, handle.id)
        items = [(i.offset, i.data["type"]) async for i in stream.subscribe(["events"])]
        assert (await handle.result()).result == "streamed"
    offsets = [o for o, _ in items]
    assert offsets == list(range(len(items)))  # no gap, no duplicate across executions
    types = [t for _, t in items]
    assert types.count("run.continued_as_new") == 3
    for once in ("run.created", "run.queued", "run.started", "step.started"):
        assert types.count(once) == 1, once
    assert types[-1] == "run.completed"
    # with a small carry limit the new execution keeps only the newest items
    inp = agent_input(script)
    inp.config.continue_as_new_after_turns = 1
    inp.config.stream_carry_limit = 5
    async with make_worker(dev_client, task_queue, settings=SETTINGS):
        handle = await start(dev_client, task_queue, inp)
        await handle.result()
        late = [i.offset async for i in WorkflowStreamClient.create(dev_client, handle.id)
                .subscribe(["events"], from_offset=0)]  # fmt: skip
    assert late[0] > 0 and late == list(range(late[0], late[0] + len(late)))
    assert late[-1] == offsets[-1]  # same run shape, same last offset


async def test_run_timeout_spans_continue_as_new(dev_client: Client, task_queue: str) -> None:
    # the dev server in real time: on the time-skipping server a model call left running
    # by the timed-out run keeps time from skipping for the tests that follow
    script: list[Any] = [
        {"tool_calls": [call("add", f"a{i}", a=i, b=1)], "delay": 1} for i in range(5)
    ]
    defn = pending_bundle(agent_input(script)).root.definition
    defn.limits.timeout = "3s"
    inp = run_input(defn)
    inp.config.continue_as_new_after_turns = 1  # each execution alone is ~1 s
    async with make_worker(dev_client, task_queue, settings=SETTINGS):
        handle = await start(dev_client, task_queue, inp)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        state = await handle.query(TaskRunWorkflow.state)
    assert state.error is not None and state.error.code == contracts.E_TIMEOUT
    assert state.continued_as_new >= 1


async def test_worker_killed_mid_loop_resumes_without_repeating_tools(
    dev_client: Client, task_queue: str
) -> None:
    script = [
        {"tool_calls": [call("record", "a", note="before crash")]},
        {"tool_calls": [call("record", "b", note="after crash")], "delay": 5},
        {"text": "survived"},
    ]
    # the dev server, not the time-skipping one: the latter keeps dispatching the
    # workflow task to the dead worker's sticky queue
    async with make_worker(dev_client, task_queue, settings=SETTINGS):
        handle = await start(dev_client, task_queue, agent_input(script))
        await wait_model_call_started(handle, calls=1)  # turn 2 in flight, tool a done
        assert list(effects_for(handle).values()) == [1]
    # the worker is gone mid-call; a new one on the same queue replays and goes on
    async with make_worker(dev_client, task_queue, settings=SETTINGS):
        state: RunState = await handle.result()
    assert state.result == "survived"
    effects = effects_for(handle)
    assert len(effects) == 2 and set(effects.values()) == {1}
    assert all(fake_tools.ATTEMPTS[k] == 1 for k in effects)
