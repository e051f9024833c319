"""The run's observable state: steps, events, progress, plan and search attributes.

The interpreter tells the tracker what happened; the tracker keeps `RunState`
consistent and mirrors the status into the `DurataskStatus` search attribute and the
Temporal UI's current details, so every observer sees the same picture.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

from workflows import contracts
from workflows.events import EventType
from workflows.models import (
    PlanItem,
    RunError,
    RunEvent,
    RunInput,
    RunState,
    RunStatus,
    StepState,
    StepStatus,
    pending_bundle,
)

EventSink = Callable[[RunEvent], None]

# Step outputs kept in the state (the query answer and the run's result) stay within
# this many bytes in all, far below Temporal's 2 MB payload limit; past it, a step's
# output is kept as a preview marked truncated. Templates still see the full values.
STATE_OUTPUT_BUDGET = 1_000_000
# a run whose usage includes estimates says so in visibility (`/v1/stats`)
PATCH_USAGE_ESTIMATED = "usage-estimated-search-attribute"
PREVIEW_BYTES = 2_000


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marked when cut: long texts shown in the state."""
    return text if len(text) <= limit else text[:limit] + " [...]"


class RunTracker:
    def __init__(self, run_id: str, inp: RunInput) -> None:
        root = pending_bundle(inp).root
        self.max_events = inp.config.max_events
        self.created_by = inp.meta.created_by
        self.sinks: list[EventSink] = []
        self.state = RunState(
            run_id=run_id,
            definition_id=root.definition.id,
            definition_version=root.version,
            status=RunStatus.queued,
            input=inp.input,
            steps=[
                StepState(id=s.id, action=s.action, label=s.label) for s in root.definition.steps
            ],
            plan=[PlanItem(step_id=s.id, label=s.title) for s in root.definition.steps],
            owner=inp.meta.owner,
            team=inp.meta.team,
            priority=inp.meta.priority,
            trigger=inp.meta.trigger,
            schedule_id=inp.meta.schedule_id,
            parent_run_id=inp.meta.parent_run_id,
            retry_of=inp.meta.retry_of,
            rerun_of=inp.meta.rerun_of,
            rerun_from=inp.meta.rerun_from,
            retry_count=inp.meta.retry_count,
            execution_count=inp.meta.retry_count + 1,
            created_at=inp.meta.created_at,
            scheduled_for=inp.meta.scheduled_for,
            source=dict(inp.meta.source),
        )
        self.step_durations: list[int] = []
        self.output_bytes = 0  # of step outputs kept in the state (STATE_OUTPUT_BUDGET)

    def resume(self, output_bytes: int, step_durations: list[int]) -> None:
        """Continue-as-new: the budgets spent by the earlier executions."""
        self.output_bytes = output_bytes
        self.step_durations = list(step_durations)

    # ------------------------------------------------------------ events
    def emit(
        self,
        type: EventType,
        step_id: str | None = None,
        message: str | None = None,
        *,
        at: datetime | None = None,
        **data: Any,
    ) -> RunEvent:
        event = RunEvent(
            type=type.value, time=at or workflow.now(), step_id=step_id, message=message, data=data
        )
        events = self.state.events
        events.append(event)
        if len(events) > self.max_events:  # keep the first few and the latest
            del events[5 : len(events) - self.max_events + 5]
        for sink in self.sinks:
            sink(event)
        return event

    # ------------------------------------------------------------ run status
    def set_status(self, status: RunStatus) -> None:
        if self.state.status == status:
            return
        self.state.status = status
        workflow.upsert_search_attributes([contracts.SA_STATUS.value_set(status.value)])
        self._details()

    def started(self) -> None:
        st = self.state
        created = st.created_at or workflow.info().start_time
        self.emit(
            EventType.RUN_CREATED,
            message="run created",
            at=created,
            trigger=st.trigger.value,
            by=self.created_by,
        )
        if st.scheduled_for:
            self.emit(EventType.RUN_SCHEDULED, message="run scheduled", at=created,
                      scheduled_for=st.scheduled_for.isoformat())  # fmt: skip
        queued = st.scheduled_for or created
        self.emit(EventType.RUN_QUEUED, message="run queued", at=queued, priority=st.priority.value)
        self.state.started_at = workflow.now()
        self.emit(EventType.RUN_STARTED, message="run started")
        self.set_status(RunStatus.running)

    def finish(self, status: RunStatus, error: RunError | None = None) -> None:
        now = workflow.now()
        self.state.completed_at = now
        if self.state.started_at:
            self.state.duration_ms = _ms(self.state.started_at, now)
        self.state.error = error
        self.state.current_step = None
        if status == RunStatus.completed:
            self.state.progress.percent = 100
            self.state.progress.estimated_time_remaining_ms = 0
        self.state.progress.current_step = None
        usage = self.state.usage
        figures: list[SearchAttributeUpdate[Any]] = [
            contracts.SA_TOKENS.value_set(usage.total_tokens),
            contracts.SA_COST.value_set(usage.cost_usd),
            contracts.SA_DURATION_MS.value_set(self.state.duration_ms or 0),
        ]
        # runs recorded before the flag existed replay without it
        if usage.estimated and workflow.patched(PATCH_USAGE_ESTIMATED):
            figures.append(contracts.SA_USAGE_ESTIMATED.value_set(True))
        workflow.upsert_search_attributes(figures)
        self.set_status(status)

    # ------------------------------------------------------------ steps
    def step(self, step_id: str) -> StepState:
        try:
            return self.state.step(step_id)
        except KeyError:
            s = StepState(id=step_id, action="unknown")
            self.state.steps.append(s)
            return s

    def step_started(self, step_id: str, title: str) -> StepState:
        s = self.step(step_id)
        s.status = StepStatus.running
        s.started_at = workflow.now()
        s.completed_at = None
        s.error = None
        s.attempts += 1
        self.state.current_step = step_id
        self.state.progress.current_step = title
        self.emit(EventType.STEP_STARTED, step_id, f"{title} started", action=s.action)
        self._details()
        return s

    def step_completed(self, step_id: str, output: Any, truncated: bool = False) -> None:
        s = self._end(step_id, StepStatus.completed)
        s.output, cut = self._within_budget(output)
        s.truncated = truncated or cut
        self.emit(
            EventType.STEP_COMPLETED,
            step_id,
            f"{s.label or step_id} completed",
            truncated=truncated,
        )
        self._progress()

    def _within_budget(self, output: Any) -> tuple[Any, bool]:
        text = (
            output if isinstance(output, str) else json.dumps(output, default=str, sort_keys=True)
        )
        size = len(text.encode())
        if size <= PREVIEW_BYTES or self.output_bytes + size <= STATE_OUTPUT_BUDGET:
            self.output_bytes += size
            return output, False
        preview = text.encode()[:PREVIEW_BYTES].decode(errors="ignore")
        self.output_bytes += len(preview)
        note = f"[truncated in the run state: {size} bytes; the run's outputs exceed {STATE_OUTPUT_BUDGET}]"
        return f"{preview}\n{note}", True

    def step_failed(self, step_id: str, error: RunError) -> None:
        s = self._end(step_id, StepStatus.failed)
        s.error = error
        self.emit(EventType.STEP_FAILED, step_id, error.message, code=error.code)

    def step_cancelled(self, step_id: str) -> None:
        self._end(step_id, StepStatus.cancelled)

    def step_skipped(self, step_id: str, reason: str) -> None:
        s = self.step(step_id)
        if s.status == StepStatus.pending:
            s.status = StepStatus.skipped
            self.emit(EventType.STEP_SKIPPED, step_id, reason)

    def _end(self, step_id: str, status: StepStatus) -> StepState:
        s = self.step(step_id)
        s.status = status
        s.completed_at = workflow.now()
        if s.started_at:
            s.duration_ms = _ms(s.started_at, s.completed_at)
            self.step_durations.append(s.duration_ms)
        return s

    def _progress(self) -> None:
        total = len(self.state.plan) or 1
        done_ids = {s.id for s in self.state.steps if s.status == StepStatus.completed}
        for item in self.state.plan:
            item.done = item.step_id in done_ids
        done = sum(1 for item in self.state.plan if item.done)
        p = self.state.progress
        p.percent = min(99, int(done * 100 / total))
        if self.step_durations:
            avg = sum(self.step_durations) / len(self.step_durations)
            p.estimated_time_remaining_ms = int(avg * max(0, total - done))
        self.emit(EventType.PROGRESS, self.state.current_step, None, percent=p.percent)
        self._details()  # keep the Web UI's current details at the new percentage

    def refresh_details(self) -> None:
        self._details()

    def _details(self) -> None:
        st = self.state
        if st.current_step and not st.status.terminal:
            index = next((i for i, s in enumerate(st.steps) if s.id == st.current_step), 0)
            title = st.progress.current_step or st.current_step
            waiting = [c.run_id for c in st.children if c.status == RunStatus.running]
            workflow.set_current_details(
                f"**{st.status.value}**: step {index + 1}/{len(st.plan)} `{st.current_step}`"
                f" ({title}), {st.progress.percent}% done"
                + (f"; waiting for {', '.join(waiting)}" if waiting else "")
            )
        else:
            workflow.set_current_details(f"**{st.status.value}**")


def _ms(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds() * 1000)
