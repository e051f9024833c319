"""An expression that breaks the evaluator's budget or types fails its step with
TEMPLATE_ERROR and the run ends: it never leaves the run "queued" while Temporal retries
a failing workflow task (issue 13: `-input.s`, `input.x[1:2]`, 900 `not`s,
`1000000000 * 'a'`)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.helpers import definition, make_worker, run_input, start
from workflows import contracts
from workflows.models import RunState

CASES: list[tuple[str, dict[str, Any]]] = [
    ("negated text", {"action": "conditional", "condition": "-input.s", "then": "end"}),
    ("900 nots", {"action": "conditional", "condition": "not " * 900 + "true", "then": "end"}),
    ("slice of a number", {"action": "notify", "message": "x {{ input.x[1:2] }}"}),
    ("a gigabyte of text", {"action": "notify", "message": "{{ 1000000000 * 'a' }}"}),
    ("a trillion items", {"action": "notify", "message": "{{ json([[1]*999999]*999999) }}"}),
]


@pytest.mark.parametrize(("name", "step"), CASES, ids=[c[0] for c in CASES])
async def test_bad_expression_fails_the_step_and_ends_the_run(
    ts_client: Client, task_queue: str, name: str, step: dict[str, Any]
) -> None:
    defn = definition([{"id": "a", **step}])
    async with make_worker(ts_client, task_queue):
        handle = await start(ts_client, task_queue, run_input(defn, {"s": "abc", "x": 5}))
        with pytest.raises(WorkflowFailureError) as e:
            # a workflow-task retry loop never ends: bound the wait so it fails the test
            await asyncio.wait_for(handle.result(), 60)
    cause = e.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == contracts.E_TEMPLATE
    state = RunState.model_validate(cause.details[0])
    assert state.status == "failed"
    assert state.error is not None and state.error.step_id == "a"
    assert state.step("a").status == "failed"
