"""Replay saved histories of real runs against today's TaskRunWorkflow.

A failure here means a workflow change is not deterministic for runs already in
flight: guard it with `workflow.patched(...)` instead of re-recording. Regenerate the
histories on purpose only, with `python -m tests.histories.record`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.helpers import APPROVAL_KEY
from workflows import proofs
from workflows.run_workflow import TaskRunWorkflow

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))
# Histories recorded by tests/workflow/test_children.py keep the ids they ran under.
WORKFLOW_IDS = {
    "children_composite": "run-replay",
    "children_fail_fast": "run-replay-ff",
    "agent_before_streams": "run-history-agent",
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
    replayer = Replayer(workflows=[TaskRunWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


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
