"""Reading a run from Temporal when the workflow cannot answer a query.

A queued or scheduled run has no worker yet, and a terminated one never recorded its
end; their state is rebuilt from the start input in history and the execution status.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from workflows.models import RunInput, RunState
from workflows.tracker import RunTracker


async def start_input(client: Client, handle: WorkflowHandle) -> RunInput:
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            (value,) = await client.data_converter.decode(payloads, [RunInput])
            assert isinstance(value, RunInput)
            return value
        break
    raise LookupError(f"run {handle.id} has no start event")


def state_from_input(run_id: str, inp: RunInput) -> RunState:
    """The state a run has before its workflow has done anything."""
    return RunTracker(run_id, inp).state
