"""Insights over time: the runs of a window cut into equal buckets (hours or days), each
with its run count, success rate, median duration, tokens and cost, for the charts.

The runs come from the same visibility scan as the insights stats (`api/insights`),
so the figures agree with the totals shown beside them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from api.insights.records import RunRecord


@dataclass
class Bucket:
    start: datetime
    runs: int = 0
    completed: int = 0
    ended: int = 0
    duration_ms: float | None = None
    tokens: int = 0
    cost_usd: float = 0.0

    @property
    def success_pct(self) -> float | None:
        return 100.0 * self.completed / self.ended if self.ended else None

    @property
    def label(self) -> str:
        return self.start.strftime("%m-%d %H:00" if self.start.minute == 0 else "%m-%d %H:%M")


def buckets(records: list[RunRecord], since: datetime, until: datetime) -> list[Bucket]:
    span = until - since
    step = timedelta(hours=1) if span <= timedelta(days=2) else timedelta(days=1)
    start = since.replace(minute=0, second=0, microsecond=0)
    if step == timedelta(days=1):
        start = start.replace(hour=0)
    out: list[Bucket] = []
    t = start
    while t <= until:
        out.append(Bucket(t))
        t += step
    durations: dict[int, list[int]] = {}
    for r in records:
        if r.start_time is None or r.start_time < start:
            continue
        i = min(int((r.start_time - start) / step), len(out) - 1)
        b = out[i]
        b.runs += 1
        if r.terminal:  # as the stats count it: completed / (completed + failed + cancelled)
            b.ended += 1
            b.completed += r.status == "completed"
        if r.status == "completed" and r.duration_ms is not None:
            durations.setdefault(i, []).append(r.duration_ms)
        b.tokens += r.tokens or 0
        b.cost_usd += r.cost_usd or 0.0
    for i, ds in durations.items():
        out[i].duration_ms = statistics.median(ds)
    return out


CHARTS = (  # title, number format, unit, the bucket's figure
    ("Runs", "%d", " runs", "runs"),
    ("Success rate (%)", "%.0f", "%", "success_pct"),
    ("Median duration (ms)", "%.0f", " ms", "duration_ms"),
    ("Tokens", "%d", " tokens", "tokens"),
    ("Cost (USD)", "%.4f", " USD", "cost_usd"),
)


def charts(series: list[Bucket]) -> list[tuple[str, str, str, list[tuple[str, float | None]]]]:
    return [
        (title, fmt, unit, [(b.label, getattr(b, attr)) for b in series])
        for title, fmt, unit, attr in CHARTS
    ]
