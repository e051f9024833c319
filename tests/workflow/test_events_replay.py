"""Runs started before the event stream existed still replay on today's workflow code.

`agent_before_streams.json` was recorded on the foundation commit (ee9476d): an agent
step with a tool call, a conditional that skips a step, and a tool step. The stream
(handlers registered in `@workflow.init`, publishing on every tracker event) adds no
commands, so the replay must not raise a non-determinism error.
"""

from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.run_workflow import TaskRunWorkflow

HISTORIES = Path(__file__).parent.parent / "histories"


async def test_history_from_before_streams_replays() -> None:
    history = WorkflowHistory.from_json(
        "run-history-agent", (HISTORIES / "agent_before_streams.json").read_text()
    )
    replayer = Replayer(workflows=[TaskRunWorkflow], data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
