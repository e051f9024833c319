"""The health verdict of a definition: its latest runs against a baseline before them.

The `recent` latest completed runs are compared with the `window` completed runs
before them, on the median of duration, tokens and cost; a rise past a threshold is a
`regression`, past half of it a `warning`. Failures in a row since the last success
count too. Cancelled runs are someone's decision, not the task's: they are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

from api.insights.metrics import median, pct_change
from api.insights.records import RunRecord
from duratask.settings import Settings
from workflows.definition import RegressionSpec
from workflows.models import RunStatus

T = TypeVar("T")
Level = Literal["healthy", "warning", "regression"]
LEVELS: tuple[Level, ...] = ("healthy", "warning", "regression")


@dataclass(frozen=True)
class Thresholds:
    latency_pct: float
    tokens_pct: float
    cost_pct: float
    consecutive_failures: int
    window: int
    recent: int
    min_baseline: int
    min_latency_ms: int

    @classmethod
    def resolve(cls, settings: Settings, spec: RegressionSpec | None) -> Thresholds:
        """The definition's `regression` block over the settings' defaults."""
        s = spec or RegressionSpec()
        pick = _pick
        window = pick(s.window, settings.regression_window)
        return cls(
            latency_pct=pick(s.latency_pct, settings.regression_latency_pct),
            tokens_pct=pick(s.tokens_pct, settings.regression_tokens_pct),
            cost_pct=pick(s.cost_pct, settings.regression_cost_pct),
            consecutive_failures=pick(
                s.consecutive_failures, settings.regression_consecutive_failures
            ),
            window=window,
            recent=pick(s.recent, settings.regression_recent),
            min_baseline=min(settings.regression_min_baseline, window),
            min_latency_ms=pick(s.min_latency_ms, settings.regression_min_latency_ms),
        )

    @property
    def runs_needed(self) -> int:
        """How many ended runs to read: both windows, plus room for failures in between."""
        return 2 * (self.window + self.recent) + self.consecutive_failures


def _pick(value: T | None, default: T) -> T:
    return default if value is None else value


class Reason(BaseModel):
    metric: Literal["duration_ms", "tokens", "cost_usd", "consecutive_failures"]
    level: Level
    baseline: float | None = None  # the baseline's median (or, for failures, None)
    recent: float  # the recent runs' median (or the failures in a row)
    change_pct: float | None = None
    threshold: float  # percent for metrics, a count for failures
    message: str


class Health(BaseModel):
    definition_id: str
    status: Level
    reasons: list[Reason] = Field(default_factory=list)
    thresholds: dict[str, float | int]
    recent_runs: list[str] = Field(default_factory=list)
    baseline_runs: int = 0
    consecutive_failures: int = 0
    last_run_id: str | None = None
    last_status: str | None = None
    notes: list[str] = Field(default_factory=list)


METRICS: tuple[tuple[Literal["duration_ms", "tokens", "cost_usd"], str], ...] = (
    ("duration_ms", "latency_pct"),
    ("tokens", "tokens_pct"),
    ("cost_usd", "cost_pct"),
)


def evaluate(definition_id: str, records: Sequence[RunRecord], t: Thresholds) -> Health:
    """The verdict over ended runs, newest first."""
    runs = [r for r in records if r.terminal and r.status != RunStatus.cancelled.value]
    failures = 0
    for r in runs:
        if r.status != RunStatus.failed.value:
            break
        failures += 1
    completed = [r for r in runs if r.status == RunStatus.completed.value]
    recent, baseline = completed[: t.recent], completed[t.recent : t.recent + t.window]
    health = Health(
        definition_id=definition_id,
        status="healthy",
        thresholds={k: v for k, v in vars(t).items()},
        recent_runs=[r.run_id for r in recent],
        baseline_runs=len(baseline),
        consecutive_failures=failures,
        last_run_id=runs[0].run_id if runs else None,
        last_status=runs[0].status if runs else None,
    )
    if failures:
        health.reasons.append(_failures(failures, t.consecutive_failures))
    if len(recent) < t.recent or len(baseline) < t.min_baseline:
        health.notes.append(
            f"not enough history to compare: {len(completed)} completed run(s), "
            f"{t.recent + t.min_baseline} needed ({t.recent} recent + {t.min_baseline} baseline)"
        )
    else:
        for metric, key in METRICS:
            reason = _metric(metric, recent, baseline, getattr(t, key), t.min_latency_ms)
            if reason is not None:
                health.reasons.append(reason)
    health.status = max((r.level for r in health.reasons), key=LEVELS.index, default="healthy")
    return health


def _failures(count: int, threshold: int) -> Reason:
    level: Level = "regression" if count >= threshold else "warning"
    return Reason(
        metric="consecutive_failures",
        level=level,
        recent=count,
        threshold=threshold,
        message=f"the last {count} run(s) failed (threshold {threshold})",
    )


def _values(runs: Sequence[RunRecord], metric: str) -> list[float]:
    get: Callable[[RunRecord], float | None] = lambda r: getattr(r, metric)  # noqa: E731
    return [float(v) for v in map(get, runs) if v is not None]


def _metric(
    metric: Literal["duration_ms", "tokens", "cost_usd"],
    recent_runs: Sequence[RunRecord],
    baseline_runs: Sequence[RunRecord],
    threshold: float,
    min_latency_ms: int,
) -> Reason | None:
    base, now = median(_values(baseline_runs, metric)), median(_values(recent_runs, metric))
    if base is None or now is None:
        return None
    change = pct_change(base, now)
    if change is None or change < threshold / 2:
        return None
    if metric == "duration_ms" and now - base < min_latency_ms:
        return None  # a few milliseconds slower is noise, whatever the percentage
    level: Level = "regression" if change >= threshold else "warning"
    return Reason(
        metric=metric,
        level=level,
        baseline=round(base, 6),
        recent=round(now, 6),
        change_pct=round(change, 1),
        threshold=threshold,
        message=(
            f"{metric} median {_fmt(now)} over the last {len(recent_runs)} run(s) vs "
            f"{_fmt(base)} over the {len(baseline_runs)} before: +{change:.0f}% "
            f"({level} at {'+' if level == 'regression' else 'half of +'}{threshold:g}%)"
        ),
    )


def _fmt(value: float) -> str:
    return f"{value:.6g}"
