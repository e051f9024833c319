"""Replay saved histories of real runs against today's workflows (every type the worker runs).

A failure here means a workflow change is not deterministic for runs already in
flight: guard it with `workflow.patched(...)` instead of re-recording. Regenerate the
histories on purpose only, with `python -m tests.histories.record`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.helpers import APPROVAL_KEY
from worker.main import WORKFLOWS
from workflows import contracts, proofs
from workflows.health_check import HEALTH_CHECK_WORKFLOW

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))
# Histories recorded by tests/workflow/test_children.py keep the ids they ran under.
WORKFLOW_IDS = {
    "children_composite": "run-replay",
    "children_fail_fast": "run-replay-ff",
    "agent_before_streams": "run-history-agent",
    "can_between_steps_resumed": "run-can_between_steps",  # the same run, its 2nd execution
    "health_check": "health-check-record",
    "cancel_reason_to_children_middle": "run-cancel_reason_to_children/nest",
}


@pytest.fixture(autouse=True)
def approval_key() -> None:
    """A worker replays with its approval key installed (approval_proofs.json needs it)."""
    proofs.install_keys([APPROVAL_KEY])


def test_histories_exist() -> None:
    assert HISTORIES, "no saved histories: run `python -m tests.histories.record`"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(
        WORKFLOW_IDS.get(path.stem, f"run-{path.stem}"), path.read_text()
    )
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def _workflow_type(path: Path) -> str:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    return history.events[0].workflow_execution_started_event_attributes.workflow_type.name


def test_every_workflow_type_the_worker_runs_has_a_saved_history() -> None:
    """A workflow type with no saved history could break running executions unseen: a
    workflow added to the worker's list without a recorded history fails here."""
    recorded = {_workflow_type(p) for p in HISTORIES}
    runs = {str(workflow._Definition.must_from_class(w).name) for w in WORKFLOWS}
    assert runs <= recorded, f"no saved history for {sorted(runs - recorded)}"
    assert HEALTH_CHECK_WORKFLOW in recorded


def test_history_covers_every_step_kind_built_here() -> None:
    text = (Path(__file__).parent.parent / "histories" / "every_step_kind.json").read_text()
    for marker in ("duratask.llm.complete", "duratask.tool.call", "duratask.notify",
                   "EVENT_TYPE_TIMER_STARTED"):  # fmt: skip
        assert marker in text


def test_saved_histories_end_as_recorded() -> None:
    """The failure and cancellation scenarios really ended that way when recorded."""
    here = Path(__file__).parent.parent / "histories"
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED" in (here / "tool_failure.json").read_text()
    cancelled = (here / "cancelled_mid_activity.json").read_text()
    assert "EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED" in cancelled
    assert "EVENT_TYPE_ACTIVITY_TASK_CANCELED" in cancelled


def _events(stem: str) -> list[Any]:
    path = Path(__file__).parent.parent / "histories" / f"{stem}.json"
    return list(WorkflowHistory.from_json(f"run-{stem}", path.read_text()).events)


def _types(stem: str) -> list[str]:
    return [EventType.Name(e.event_type) for e in _events(stem)]


def _signals(stem: str) -> list[str]:
    return [e.workflow_execution_signaled_event_attributes.signal_name for e in _events(stem)
            if e.HasField("workflow_execution_signaled_event_attributes")]  # fmt: skip


def test_saved_histories_cover_the_paths_they_are_named_for() -> None:
    """Each driven scenario (tests/histories/record.py DRIVEN) took the path it is for."""
    assert _types("can_between_steps")[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
    resumed = _events("can_between_steps_resumed")[0].workflow_execution_started_event_attributes
    assert resumed.continued_execution_run_id  # started from the carried run
    assert "intervene" in _signals("steer")
    assert "EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED" in _types("steer")
    approval = _types("approval_reminder_timeout")
    assert approval.count("EVENT_TYPE_TIMER_FIRED") >= 3  # two reminders and the timeout
    assert approval[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"  # on_timeout: reject
    assert "EVENT_TYPE_TIMER_FIRED" in _types("wait_until")
    unpinned = [e.activity_task_scheduled_event_attributes.activity_type.name
                for e in _events("unpinned_scheduled_run")
                if e.HasField("activity_task_scheduled_event_attributes")]  # fmt: skip
    assert unpinned[0] == contracts.RESOLVE_BUNDLE_ACTIVITY
    assert "set_priority" in _signals("priority_change")
    middle = _events("cancel_reason_to_children_middle")
    causes = [e.workflow_execution_cancel_requested_event_attributes.cause for e in middle
              if e.HasField("workflow_execution_cancel_requested_event_attributes")]  # fmt: skip
    assert causes == ["superseded"]  # the reason came with the parent's cancel, no signal
    assert "EVENT_TYPE_MARKER_RECORDED" in _types("cancel_reason_to_children")


def _activities(stem: str) -> list[str]:
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in _events(stem)
            if e.HasField("activity_task_scheduled_event_attributes")]  # fmt: skip


def _updates(stem: str) -> list[str]:
    return [e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name
            for e in _events(stem)
            if e.HasField("workflow_execution_update_accepted_event_attributes")]  # fmt: skip


def test_governance_histories_took_their_paths() -> None:
    """Budgets, input steps and re-runs (tests/histories/record.py) as recorded."""
    assert _updates("budget_raised") == ["raise_budget"]
    assert _activities("budget_raised") == [contracts.LLM_ACTIVITY] * 2
    assert _updates("input_step") == ["submit_input"]  # the refused value left no trace
    assert _activities("rerun_reused") == [contracts.LLM_ACTIVITY]  # `one` was reused
    assert _activities("daily_budget") == [contracts.LLM_ACTIVITY]
    assert "EVENT_TYPE_MARKER_RECORDED" in _types("daily_budget")  # usage: a local activity


def test_edited_approval_history_took_its_path() -> None:
    """approval_edited.json: a raw `approve` signal carrying an edit without a proof
    (refused in the run), then a signed `decide` update with an edit, then `ship`."""
    assert _signals("approval_edited") == ["approve"]
    assert _updates("approval_edited") == ["decide"]
    decide = next(e for e in _events("approval_edited")
                  if e.HasField("workflow_execution_update_accepted_event_attributes"))  # fmt: skip
    payload = decide.workflow_execution_update_accepted_event_attributes.accepted_request.input
    assert b'"output":"Corrected notes for 1.0"' in payload.args.payloads[0].data
    assert _activities("approval_edited").count(contracts.LLM_ACTIVITY) == 2
