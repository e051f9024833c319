"""Small statistics used by stats and health: percentiles, medians, relative change.

Pure functions over plain numbers, so the figures users see are unit-tested exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel


class Distribution(BaseModel):
    """How a measure is spread over runs (None when no run has it)."""

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    avg: float | None = None
    min: float | None = None
    max: float | None = None


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The `pct` percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return None
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile must be within 0..100, got {pct}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    if low == high:
        return float(ordered[low])
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 50)


def distribution(values: Sequence[float]) -> Distribution:
    if not values:
        return Distribution()
    return Distribution(
        count=len(values),
        p50=_round(percentile(values, 50)),
        p95=_round(percentile(values, 95)),
        avg=_round(sum(values) / len(values)),
        min=float(min(values)),
        max=float(max(values)),
    )


def pct_change(baseline: float, recent: float) -> float | None:
    """How much `recent` rose over `baseline`, in percent (None if the baseline is 0)."""
    if baseline == 0:
        return None
    return (recent - baseline) * 100 / baseline


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
