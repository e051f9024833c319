"""`/v1/runs/compare?a=&b=`: two runs side by side, with step-level deltas.

Included in the app before the runs router, whose `/v1/runs/{run_id}` would otherwise
take `compare` for a run id.
"""

from __future__ import annotations

from fastapi import APIRouter, Query

from api.deps import Reader
from api.errors import COMMON, TEMPORAL, responses
from api.insights.compare import RunComparison
from api.insights.deps import Insights

router = APIRouter(prefix="/v1/runs", tags=["runs"], responses=responses(*COMMON, 404, *TEMPORAL))


@router.get("/compare")
async def compare_runs(
    insights: Insights,
    _: Reader,
    a: str = Query(..., min_length=1, description="the first run id (the reference)"),
    b: str = Query(..., min_length=1, description="the second run id (deltas are b - a)"),
) -> RunComparison:
    """Duration, tokens, cost, step count and status side by side; per step id: status,
    duration, tokens and whether the output changed. A running run counts as far as it got."""
    return await insights.compare(a, b)
