"""Stats over many runs: counts by status, success rate, durations, usage, triggers.

Computed from `RunRecord`s (visibility), so an owner's or a definition's history is
summarised without reading any run's history. Scheduled runs are the "proactive" ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from api.insights.metrics import Distribution, distribution
from api.insights.records import RunRecord
from workflows.models import RunStatus, Trigger

MANUAL = (Trigger.api.value, Trigger.cli.value)
# Temporal execution statuses (visibility's `ExecutionStatus`) that end a run
EXEC_SUCCESS = "Completed"
EXEC_FINISHED = ("Completed", "Failed", "Canceled", "Terminated", "TimedOut")


class Totals(BaseModel):
    total: int | float = 0
    avg_per_run: float | None = None  # over the ended runs that report it


class TriggerCounts(BaseModel):
    proactive: int = 0  # started by a schedule (trigger=schedule)
    manual: int = 0  # started by someone through the API or the CLI
    other: int = 0  # retries, sub-tasks, runs started by a model's tool
    by_trigger: dict[str, int] = Field(default_factory=dict)


class RunStats(BaseModel):
    owner: str | None = None
    definition_id: str | None = None
    since: datetime
    until: datetime
    total: int  # runs matching (exact when the server counts, else the runs scanned)
    scanned: int
    max_runs: int
    capped: bool  # more runs matched than `max_runs`: the figures below cover the newest
    by_status: dict[str, int]
    by_execution_status: dict[str, int] | None = None  # exact, Temporal's statuses
    finished: int
    success_rate: float | None  # completed / ended (completed + failed + cancelled)
    duration_ms: Distribution  # of completed runs
    tokens: Totals
    cost_usd: Totals
    # ended runs whose tokens and cost include estimates: their model server sent no usage
    usage_estimated_runs: int = 0
    triggers: TriggerCounts
    by_definition: dict[str, int] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)


def summarize(
    records: Sequence[RunRecord],
    *,
    since: datetime,
    until: datetime,
    max_runs: int,
    capped: bool,
    exact: dict[str, int] | None,
    owner: str | None = None,
    definition_id: str | None = None,
) -> RunStats:
    by_status = Counter(r.status for r in records)
    ended = [r for r in records if r.terminal]
    finished = len(ended)
    success = by_status.get(RunStatus.completed.value, 0)
    notes: list[str] = []
    if capped:
        notes.append(
            f"more than {max_runs} runs matched: durations, usage and triggers cover the "
            f"newest {max_runs}"
        )
        if exact is not None:  # counts over every run, not only the scanned ones
            finished = sum(exact.get(k, 0) for k in EXEC_FINISHED)
            success = exact.get(EXEC_SUCCESS, 0)
    estimated = sum(1 for r in ended if r.usage_estimated)
    if estimated:
        notes.append(
            f"tokens and cost of {estimated} run(s) include estimates: their model server "
            "reported no usage"
        )
    durations = [
        float(r.duration_ms)
        for r in ended
        if r.status == RunStatus.completed.value and r.duration_ms is not None
    ]
    return RunStats(
        owner=owner,
        definition_id=definition_id,
        since=since,
        until=until,
        total=sum(exact.values()) if exact is not None else len(records),
        scanned=len(records),
        max_runs=max_runs,
        capped=capped,
        by_status=dict(by_status),
        by_execution_status=exact,
        finished=finished,
        success_rate=round(success / finished, 4) if finished else None,
        duration_ms=distribution(durations),
        tokens=_totals([r.tokens for r in ended]),
        cost_usd=_totals([r.cost_usd for r in ended], digits=6),
        usage_estimated_runs=estimated,
        triggers=trigger_counts(records),
        by_definition=dict(Counter(r.definition_id or "unknown" for r in records)),
        notes=notes,
    )


def trigger_counts(records: Sequence[RunRecord]) -> TriggerCounts:
    by_trigger = Counter(r.trigger or "unknown" for r in records)
    proactive = by_trigger.get(Trigger.schedule.value, 0)
    manual = sum(by_trigger.get(t, 0) for t in MANUAL)
    return TriggerCounts(
        proactive=proactive,
        manual=manual,
        other=len(records) - proactive - manual,
        by_trigger=dict(by_trigger),
    )


def _totals(values: Sequence[int | float | None], digits: int = 2) -> Totals:
    known = [v for v in values if v is not None]
    if not known:
        return Totals()
    total = sum(known)
    return Totals(
        total=total if isinstance(total, int) else round(total, 8),
        avg_per_run=round(total / len(known), digits),
    )
