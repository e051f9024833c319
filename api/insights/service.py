"""Insights for the gateway: stats, comparison and health, read from Temporal.

Each read covers only the runs (and definitions) the caller may see
(duratask/access.py). Each read is bounded: stats scan at most `insights_max_runs` runs (the answer says
when it stopped short), a health check reads only the runs its windows need, and the
regressions list checks at most `regression_max_definitions` definitions.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.service import RPCError

from api.definitions_service import DefinitionService
from api.errors import map_rpc_error, unprocessable
from api.insights.alerts import RegressionAlerts
from api.insights.compare import RunComparison, compare
from api.insights.health import Health, Thresholds, evaluate
from api.insights.records import count_by_status, run_query, scan
from api.insights.stats import RunStats, summarize
from api.runs_service import RunService
from duratask.access import Caller, is_admin, with_visibility
from duratask.settings import Settings
from duratask.store.definitions import DefinitionStore
from workflows.durations import parse_duration

HEALTH_CONCURRENCY = 8


class Regressions(BaseModel):
    checked: int  # definitions checked
    total_definitions: int
    capped: bool  # more definitions exist than were checked
    items: list[Health] = Field(default_factory=list)  # the ones not healthy, worst first


def window_start(since: datetime | None, window: str | None, default: str) -> datetime:
    """Where a stats window begins: `since`, else now minus `window` (e.g. 7d)."""
    if since is not None and window is not None:
        raise unprocessable("give either 'since' or 'window', not both")
    if since is not None:
        return since if since.tzinfo else since.replace(tzinfo=UTC)
    try:
        span = parse_duration(window or default)
    except ValueError as e:
        raise unprocessable(f"window: {e}") from None
    if span <= timedelta(0):
        raise unprocessable("window must be longer than 0")
    return datetime.now(UTC) - span


class InsightsService:
    def __init__(
        self,
        client: Client,
        store: DefinitionStore,
        settings: Settings,
        principal: Caller,
        alerts: RegressionAlerts | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.principal = principal
        self.alerts = alerts
        self.definitions = DefinitionService(store, principal)

    async def stats(
        self, owner: str | None, definition_id: str | None, since: datetime, max_runs: int
    ) -> RunStats:
        query = with_visibility(
            run_query(owner=owner, definition_id=definition_id, since=since), self.principal
        )
        try:
            (records, capped), exact = await asyncio.gather(
                scan(self.client, query, max_runs), count_by_status(self.client, query)
            )
        except RPCError as e:
            raise map_rpc_error(e) from None
        return summarize(
            records,
            since=since,
            until=datetime.now(UTC),
            max_runs=max_runs,
            capped=capped,
            exact=exact,
            owner=owner,
            definition_id=definition_id,
        )

    async def compare(self, a: str, b: str) -> RunComparison:
        runs = RunService(self.client, self.store, self.settings, self.principal)
        state_a, state_b = await asyncio.gather(runs.get(a), runs.get(b))
        return compare(state_a, state_b)

    async def health(self, definition_id: str) -> Health:
        definition = (await self.definitions.get(definition_id)).definition  # 404: unknown
        thresholds = Thresholds.resolve(self.settings, definition.regression)
        query = with_visibility(
            run_query(definition_id=definition_id, closed_only=True), self.principal
        )
        cap = min(thresholds.runs_needed, self.settings.insights_max_runs)
        try:
            records, _ = await scan(self.client, query, cap)
        except RPCError as e:
            raise map_rpc_error(e) from None
        records.sort(key=lambda r: r.close_time or datetime.min.replace(tzinfo=UTC), reverse=True)
        health = evaluate(definition_id, records, thresholds)
        if self.alerts is not None and is_admin(self.principal):  # only whole verdicts alert
            await self.alerts.observe(health)
        return health

    async def regressions(self, limit: int) -> Regressions:
        definitions, total = await self.definitions.list_latest(limit, 0)
        gate = asyncio.Semaphore(HEALTH_CONCURRENCY)

        async def one(definition_id: str) -> Health:
            async with gate:
                return await self.health(definition_id)

        checked = await asyncio.gather(*(one(d.definition.id) for d in definitions))
        order = {"regression": 0, "warning": 1}
        items = sorted((h for h in checked if h.status != "healthy"),
                       key=lambda h: (order[h.status], h.definition_id))  # fmt: skip
        return Regressions(
            checked=len(definitions), total_definitions=total, capped=total > limit, items=items
        )
