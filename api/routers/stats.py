"""`/v1/stats`: run counts, success rate, durations, usage and triggers per owner
and/or definition over a time window (docs/insights.md)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from api.deps import Reader, SettingsDep
from api.errors import COMMON, TEMPORAL, responses, unprocessable
from api.insights.deps import Insights
from api.insights.service import window_start
from api.insights.stats import RunStats

router = APIRouter(
    prefix="/v1/stats", tags=["insights"], responses=responses(*COMMON, 404, *TEMPORAL)
)


@router.get("")
async def get_stats(
    insights: Insights,
    settings: SettingsDep,
    _: Reader,
    owner: str | None = Query(None, description="the runs of this owner (e.g. an avatar)"),
    definition_id: str | None = Query(None, description="the runs of this definition"),
    since: datetime | None = Query(None, description="runs started at or after (ISO 8601)"),
    window: str | None = Query(None, description="or: runs of the last 7d, 24h, 30m..."),
    max_runs: int | None = Query(None, ge=1, description="scan at most this many runs"),
) -> RunStats:
    """Runs by status, success rate, duration p50/p95, tokens and cost totals, and how
    many were scheduled (proactive) vs manual. Default window: the settings' (7d)."""
    cap = settings.insights_max_runs
    if max_runs is not None and max_runs > cap:
        raise unprocessable(f"max_runs may be at most {cap} (DURATASK_INSIGHTS_MAX_RUNS)")
    start = window_start(since, window, settings.insights_default_window)
    return await insights.stats(owner, definition_id, start, max_runs or cap)
