"""The `record_usage` activity: daily budgets need a count that spans runs, so each
model call's usage goes into the store (duratask/store/usage.py) and the run gets back
what its owner and its definition have used today."""

from __future__ import annotations

from temporalio import activity

from duratask.store.definitions import DefinitionStore
from duratask.store.usage import UsageStore
from workflows import contracts
from workflows.models import DailyUsage, UsageRecordRequest


class UsageActivities:
    def __init__(self, store: DefinitionStore) -> None:
        self.usage = UsageStore(store.engine)

    @activity.defn(name=contracts.USAGE_ACTIVITY)
    async def record_usage(self, req: UsageRecordRequest) -> DailyUsage:
        day = await self.usage.record(
            req.key, req.run_id, req.owner, req.definition_id, req.tokens, req.cost_usd
        )
        out = DailyUsage(day=day, attempt=activity.info().attempt)
        if req.owner:
            out.owner_tokens, out.owner_cost_usd = await self.usage.totals(day, owner=req.owner)
        out.definition_tokens, out.definition_cost_usd = await self.usage.totals(
            day, definition_id=req.definition_id
        )
        return out
