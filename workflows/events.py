"""The run's live event stream: names, the wire shape, and the workflow-side publisher.

Every run hosts one durable, offset-addressed stream (`temporalio.contrib.workflow_streams`)
on a single topic. The workflow publishes what `RunTracker.emit()` records. The LLM
activity's token deltas (`TRANSIENT` types) are relayed to the gateways outside history
(`duratask.store.deltas`) and merged into the feed between the durable events. Publishing is in-memory workflow state, not a command: adding
or removing it never changes the command sequence that replay checks.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # kept out of the import path of the CLI, which reads the names only
    from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowTopicHandle

    from workflows.models import RunEvent

TOPIC = "events"


class EventType(StrEnum):
    """Every event type of the run's stream (docs/events.md describes each).

    The tracker, the step helpers (agent, approvals, children) and the LLM activity emit
    only these; the gateway, the CLI and the benchmarks compare against them. A `StrEnum`
    so a member equals its wire string and old histories (plain strings) read the same.
    """

    RUN_CREATED = "run.created"
    RUN_SCHEDULED = "run.scheduled"
    RUN_QUEUED = "run.queued"
    RUN_STARTED = "run.started"
    RUN_PRIORITY_CHANGED = "run.priority_changed"
    RUN_CANCEL_REQUESTED = "run.cancel_requested"
    RUN_CONTINUED_AS_NEW = "run.continued_as_new"
    RUN_COMMENT = "run.comment"
    STEP_STARTED = "step.started"
    STEP_COMPLETED = "step.completed"
    STEP_FAILED = "step.failed"
    STEP_SKIPPED = "step.skipped"
    STEP_BRANCH = "step.branch"
    STEP_INTERRUPTED = "step.interrupted"
    TOOL_REQUESTED = "run.tool_requested"
    TOOL_COMPLETED = "run.tool_completed"
    TOOL_APPROVAL_REQUESTED = "run.tool_approval_requested"
    TOOL_APPROVAL_DECIDED = "run.tool_approval_decided"
    LLM_DELTA = "llm.delta"
    LLM_RETRY = "llm.retry"
    LLM_STEERED = "llm.steered"
    LLM_COMPLETED = "llm.completed"
    LLM_FALLBACK = "llm.fallback"
    LLM_RATE_LIMITED = "llm.waiting_for_rate_limit"
    AGENT_NEW_TURN = "agent.new_turn"
    INTERVENTION = "intervention.received"
    PLAN_UPDATED = "plan.updated"
    DRIFT_ALERT = "drift.alert"
    PROGRESS = "progress"
    AWAITING_APPROVAL = "run.awaiting_approval"
    APPROVAL_VOTE = "approval.vote"
    APPROVAL_DUPLICATE = "approval.duplicate"
    APPROVAL_REFUSED = "approval.refused"
    APPROVAL_REMINDER = "approval.reminder"
    APPROVAL_NOTIFY_FAILED = "approval.notify_failed"
    APPROVAL_DECIDED = "approval.decided"
    USAGE_UPDATED = "usage.updated"
    BUDGET_EXCEEDED = "budget.exceeded"
    BUDGET_RAISED = "budget.raised"
    AWAITING_INPUT = "run.awaiting_input"
    INPUT_RECEIVED = "input.received"
    INPUT_NOTIFY_FAILED = "input.notify_failed"
    STEP_REUSED = "step.reused"
    CHILD_STARTED = "child.started"
    CHILD_COMPLETED = "child.completed"
    RUN_COMPLETED = "run.completed"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"


TERMINAL = frozenset({EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED})
# Live-only types: relayed outside the Workflow Stream (docs/events.md), no offset of their own
TRANSIENT = frozenset({EventType.LLM_DELTA, EventType.LLM_RETRY})


def wire(
    run_id: str,
    type: EventType | str,
    time: datetime,
    step_id: str | None = None,
    message: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One stream item as published: JSON-ready; the offset is the stream's, added on read."""
    return {
        "type": str(type),
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
