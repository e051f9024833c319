"""What insights know of a run, read from Temporal visibility in bounded amounts.

A run sets `DurataskTokens`, `DurataskCostUsd` and `DurataskDurationMs` when it ends
(workflows/tracker.py), so closed runs carry their figures in visibility and no run
history needs reading. Every read is capped: the caller says how many runs at most,
and learns whether there were more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.runs_service import CLOSED_STATUS
from workflows import contracts
from workflows.models import RunStatus

BASE_QUERY = "WorkflowType = 'TaskRunWorkflow' AND ExecutionStatus != 'ContinuedAsNew'"
CLOSED = "ExecutionStatus IN ('Completed', 'Failed', 'Canceled', 'Terminated', 'TimedOut')"
PAGE_SIZE = 500


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    definition_id: str | None
    owner: str | None
    trigger: str | None
    status: str  # duratask's status (RunStatus value)
    start_time: datetime | None
    close_time: datetime | None
    duration_ms: int | None
    tokens: int | None
    cost_usd: float | None
    usage_estimated: bool = False  # tokens/cost include estimates (no usage from the server)

    @property
    def terminal(self) -> bool:
        return RunStatus(self.status).terminal


def record_of(w: WorkflowExecution) -> RunRecord:
    sa = w.typed_search_attributes
    closed = w.status is not None and w.status != WorkflowExecutionStatus.RUNNING
    status = (
        CLOSED_STATUS.get(w.status, RunStatus.failed).value  # type: ignore[arg-type]
        if closed
        else sa.get(contracts.SA_STATUS) or RunStatus.queued.value
    )
    duration = sa.get(contracts.SA_DURATION_MS)
    if not duration and closed and w.close_time and w.start_time:
        duration = int((w.close_time - w.start_time).total_seconds() * 1000)
    return RunRecord(
        run_id=w.id,
        definition_id=sa.get(contracts.SA_DEFINITION),
        owner=sa.get(contracts.SA_OWNER),
        trigger=sa.get(contracts.SA_TRIGGER),
        status=status,
        start_time=w.start_time,
        close_time=w.close_time,
        duration_ms=duration if closed else None,
        tokens=sa.get(contracts.SA_TOKENS),
        cost_usd=sa.get(contracts.SA_COST),
        usage_estimated=bool(sa.get(contracts.SA_USAGE_ESTIMATED)),
    )


def quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def visibility_time(t: datetime) -> str:
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def run_query(
    owner: str | None = None,
    definition_id: str | None = None,
    since: datetime | None = None,
    closed_only: bool = False,
) -> str:
    clauses = [BASE_QUERY]
    if owner:
        clauses.append(f"{contracts.SA_OWNER.name} = {quote(owner)}")
    if definition_id:
        clauses.append(f"{contracts.SA_DEFINITION.name} = {quote(definition_id)}")
    if since is not None:
        clauses.append(f"StartTime >= {quote(visibility_time(since))}")
    if closed_only:
        clauses.append(CLOSED)
    return " AND ".join(clauses)


async def scan(client: Client, query: str, cap: int) -> tuple[list[RunRecord], bool]:
    """At most `cap` runs matching `query`, newest first, and whether more matched."""
    records: list[RunRecord] = []
    async for w in client.list_workflows(query, page_size=min(PAGE_SIZE, cap + 1), limit=cap + 1):
        if len(records) == cap:
            return records, True
        records.append(record_of(w))
    return records, False


async def count_by_status(client: Client, query: str) -> dict[str, int] | None:
    """Exact run counts per Temporal execution status, or None if the server cannot group."""
    try:
        result = await client.count_workflows(f"{query} GROUP BY ExecutionStatus")
    except RPCError as e:
        if e.status in (RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.UNIMPLEMENTED):
            return None
        raise
    counts: dict[str, int] = {}
    for group in result.groups:
        key: Any = group.group_values[0] if group.group_values else "unknown"
        counts[str(key)] = counts.get(str(key), 0) + group.count
    return counts
