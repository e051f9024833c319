"""Definition health: `/v1/definitions/{id}/health` (healthy / warning / regression,
with reasons) and `/v1/health/regressions` (the definitions that are not healthy)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from api.deps import Reader, SettingsDep
from api.errors import COMMON, TEMPORAL, responses, unprocessable
from api.insights.deps import Insights
from api.insights.health import Health
from api.insights.service import Regressions

router = APIRouter(tags=["insights"], responses=responses(*COMMON, 404, *TEMPORAL))


@router.get("/v1/definitions/{definition_id}/health")
async def definition_health(definition_id: str, insights: Insights, _: Reader) -> Health:
    """The latest runs against the baseline before them, by the definition's `regression`
    thresholds (or the settings' defaults)."""
    return await insights.health(definition_id)


@router.get("/v1/health/regressions")
async def list_regressions(
    insights: Insights,
    settings: SettingsDep,
    _: Reader,
    limit: int | None = Query(None, ge=1, description="check at most this many definitions"),
) -> Regressions:
    """Every definition in `warning` or `regression`, worst first."""
    cap = settings.regression_max_definitions
    if limit is not None and limit > cap:
        raise unprocessable(f"limit may be at most {cap} (DURATASK_REGRESSION_MAX_DEFINITIONS)")
    return await insights.regressions(limit or cap)
