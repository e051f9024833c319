"""The run's live event stream: names, the wire shape, and the workflow-side publisher.

Every run hosts one durable, offset-addressed stream (`temporalio.contrib.workflow_streams`)
on a single topic. The workflow publishes what `RunTracker.emit()` records. The LLM
activity's token deltas (`TRANSIENT` types) are relayed to the gateways outside history
(`duratask.store.deltas`) and merged into the feed between the durable events. Publishing is in-memory workflow state, not a command: adding
or removing it never changes the command sequence that replay checks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowTopicHandle

from workflows.models import RunEvent

TOPIC = "events"

# The event types of the stream (docs/events.md describes each). The tracker, approvals.py,
# children.py and agent.py emit them through `RunTracker.emit` under these names.
RUN_CREATED = "run.created"
RUN_SCHEDULED = "run.scheduled"
RUN_QUEUED = "run.queued"
RUN_STARTED = "run.started"
STEP_STARTED = "step.started"
STEP_COMPLETED = "step.completed"
STEP_FAILED = "step.failed"
STEP_SKIPPED = "step.skipped"
TOOL_REQUESTED = "run.tool_requested"
TOOL_COMPLETED = "run.tool_completed"
LLM_DELTA = "llm.delta"
LLM_RETRY = "llm.retry"
LLM_COMPLETED = "llm.completed"
AWAITING_APPROVAL = "run.awaiting_approval"
APPROVAL_DECIDED = "approval.decided"
INTERVENTION = "intervention.received"
COMMENT = "run.comment"
PLAN_UPDATED = "plan.updated"
DRIFT_ALERT = "drift.alert"
PROGRESS = "progress"
CHILD_STARTED = "child.started"
CHILD_COMPLETED = "child.completed"
RUN_COMPLETED = "run.completed"
RUN_FAILED = "run.failed"
RUN_CANCELLED = "run.cancelled"

TERMINAL = frozenset({RUN_COMPLETED, RUN_FAILED, RUN_CANCELLED})
# Live-only types: relayed outside the Workflow Stream (docs/events.md), no offset of their own
TRANSIENT = frozenset({LLM_DELTA, LLM_RETRY})


def wire(
    run_id: str,
    type: str,
    time: datetime,
    step_id: str | None = None,
    message: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One stream item as published: JSON-ready; the offset is the stream's, added on read."""
    return {
        "type": type,
        "time": time.isoformat(),
        "run_id": run_id,
        "step_id": step_id,
        "message": message,
        "data": data or {},
    }


class StreamPublisher:
    """A `RunTracker` sink: publishes every recorded event on the run's stream."""

    def __init__(self, stream: WorkflowStream, run_id: str) -> None:
        self.run_id = run_id
        self.topic: WorkflowTopicHandle[Any] = stream.topic(TOPIC)

    def __call__(self, event: RunEvent) -> None:
        self.topic.publish(
            wire(self.run_id, event.type, event.time, event.step_id, event.message, event.data)
        )
