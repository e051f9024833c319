"""The pure insight computations: percentiles, stats, the health verdict, run comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from api.insights.compare import compare
from api.insights.health import Thresholds, evaluate
from api.insights.metrics import distribution, pct_change, percentile
from api.insights.records import RunRecord, run_query
from api.insights.stats import summarize
from duratask.settings import Settings
from workflows.definition import RegressionSpec, TaskDefinition
from workflows.models import RunError, RunState, RunStatus, StepState, StepStatus, Usage

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rec(i: int, status: str = "completed", ms: int = 1000, tokens: int = 100,
        cost: float = 0.01, trigger: str = "api", definition: str = "d") -> RunRecord:  # fmt: skip
    return RunRecord(
        run_id=f"run-{i}",
        definition_id=definition,
        owner="ada",
        trigger=trigger,
        status=status,
        start_time=T0 - timedelta(minutes=i),
        close_time=T0 - timedelta(minutes=i) + timedelta(milliseconds=ms),
        duration_ms=ms if status != "running" else None,
        tokens=tokens if status != "running" else None,
        cost_usd=cost if status != "running" else None,
    )


def thresholds(**kw: object) -> Thresholds:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return Thresholds.resolve(settings, RegressionSpec.model_validate(kw) if kw else None)


# ---------------------------------------------------------------- metrics


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_distribution_and_change() -> None:
    d = distribution([100.0, 200.0, 300.0, 4000.0])
    assert (d.count, d.p50, d.min, d.max, d.avg) == (4, 250.0, 100.0, 4000.0, 1150.0)
    assert d.p95 == 3445.0  # rank 2.85: 300 + 0.85 * 3700
    assert distribution([]).p50 is None
    assert pct_change(100, 150) == 50
    assert pct_change(0, 10) is None


# ---------------------------------------------------------------- stats


def test_summarize_counts_success_durations_usage_and_triggers() -> None:
    records = [
        rec(1, ms=100, tokens=10, cost=0.5, trigger="schedule"),
        rec(2, ms=300, tokens=30, cost=0.25),
        rec(3, status="failed", ms=50, tokens=5, cost=0.0, trigger="cli"),
        rec(4, status="running", trigger="retry"),
    ]
    s = summarize(records, since=T0, until=T0, max_runs=10, capped=False, exact=None)
    assert s.by_status == {"completed": 2, "failed": 1, "running": 1}
    assert (s.total, s.scanned, s.finished, s.success_rate) == (4, 4, 3, 0.6667)
    assert (s.duration_ms.count, s.duration_ms.p50) == (2, 200.0)  # completed runs only
    assert s.tokens.total == 45 and s.cost_usd.total == 0.75
    t = s.triggers
    assert (t.proactive, t.manual, t.other) == (1, 2, 1)
    assert not s.notes


def test_summarize_when_capped_uses_exact_counts_and_says_so() -> None:
    exact = {"Completed": 90, "Failed": 10, "Running": 5}
    s = summarize([rec(1)], since=T0, until=T0, max_runs=1, capped=True, exact=exact)
    assert (s.total, s.scanned, s.finished, s.success_rate) == (105, 1, 100, 0.9)
    assert s.capped and "more than 1 runs matched" in s.notes[0]


def test_run_query_quotes_values() -> None:
    q = run_query(owner="o'brien", definition_id="d", since=T0, closed_only=True)
    assert "DurataskOwner = 'o\\'brien'" in q
    assert "StartTime >= '2026-01-01T00:00:00.000000Z'" in q
    assert "ExecutionStatus IN (" in q


# ---------------------------------------------------------------- health


def history(recent: list[RunRecord], baseline: list[RunRecord]) -> list[RunRecord]:
    return recent + baseline  # newest first


def test_healthy_when_recent_runs_look_like_the_baseline() -> None:
    runs = [rec(i, ms=1000 + i, tokens=100) for i in range(25)]
    h = evaluate("d", runs, thresholds())
    assert h.status == "healthy" and h.reasons == [] and h.baseline_runs == 20
    assert len(h.recent_runs) == 5


def test_tokens_regression_and_latency_warning_name_metric_baseline_and_threshold() -> None:
    recent = [rec(i, ms=1300, tokens=200) for i in range(5)]  # latency +30%, tokens +100%
    baseline = [rec(i, ms=1000, tokens=100) for i in range(5, 25)]
    h = evaluate("d", history(recent, baseline), thresholds())
    assert h.status == "regression"
    by_metric = {r.metric: r for r in h.reasons}
    assert set(by_metric) == {"tokens", "duration_ms"}
    tokens = by_metric["tokens"]
    assert (tokens.level, tokens.baseline, tokens.recent, tokens.change_pct, tokens.threshold) == (
        "regression", 100, 200, 100.0, 50)  # fmt: skip
    assert by_metric["duration_ms"].level == "warning"  # +30% is past half of 50%


def test_small_slowdowns_are_noise_and_thresholds_come_from_the_definition() -> None:
    recent = [rec(i, ms=40) for i in range(5)]
    baseline = [rec(i, ms=10) for i in range(5, 25)]  # +300%, but only 30 ms slower
    assert evaluate("d", recent + baseline, thresholds()).status == "healthy"
    tight = thresholds(min_latency_ms=0, latency_pct=500)  # +300% >= half of 500%
    h = evaluate("d", recent + baseline, tight)
    assert h.status == "warning" and h.reasons[0].threshold == 500


def test_consecutive_failures_warn_then_regress_and_cancelled_runs_are_skipped() -> None:
    ok = [rec(i) for i in range(10, 40)]
    one = [rec(0, status="failed")]
    assert evaluate("d", one + ok, thresholds()).status == "warning"
    three = [rec(0, "failed"), rec(1, "cancelled"), rec(2, "failed"), rec(3, "failed")]
    h = evaluate("d", three + ok, thresholds())
    assert h.status == "regression" and h.consecutive_failures == 3
    assert h.reasons[0].metric == "consecutive_failures" and h.last_status == "failed"


def test_not_enough_history_is_said_not_judged() -> None:
    h = evaluate("d", [rec(i, tokens=100 * i + 1) for i in range(6)], thresholds())
    assert h.status == "healthy" and "not enough history" in h.notes[0]
    assert evaluate("d", [], thresholds()).last_run_id is None


def test_cost_regression_and_zero_baselines() -> None:
    recent = [rec(i, cost=0.03) for i in range(2)]
    baseline = [rec(i, cost=0.01) for i in range(2, 6)]
    h = evaluate("d", recent + baseline, thresholds(recent=2, window=4, cost_pct=100))
    assert [(r.metric, r.level, r.change_pct) for r in h.reasons] == [
        ("cost_usd", "regression", 200.0)
    ]
    free = [rec(i, cost=0.0) for i in range(6)]
    assert evaluate("d", free, thresholds(recent=2, window=4)).status == "healthy"


def test_regression_block_in_the_schema() -> None:
    d = TaskDefinition.model_validate(
        {
            "id": "x",
            "steps": [{"id": "a", "action": "wait", "duration": 1}],
            "regression": {"latency_pct": 20, "window": 10, "recent": 3},
        }
    )
    assert d.regression is not None and d.regression.latency_pct == 20
    t = thresholds(latency_pct=20, window=10, recent=3)
    assert (t.latency_pct, t.window, t.recent, t.tokens_pct) == (20, 10, 3, 50)
    for bad in ({"latency_pct": -1}, {"recent": 0}, {"tokens": 5}):
        with pytest.raises(ValidationError):
            RegressionSpec.model_validate(bad)


# ---------------------------------------------------------------- compare


def state(run_id: str, status: RunStatus, steps: list[StepState], **kw: object) -> RunState:
    s = RunState(run_id=run_id, definition_id="d", definition_version=1, status=status,
                 steps=steps, started_at=T0, **kw)  # type: ignore[arg-type]  # fmt: skip
    for step in steps:
        s.usage.add(step.usage)
    return s


def step(sid: str, status: StepStatus, out: object = None, ms: int | None = 100,
         tokens: int = 10) -> StepState:  # fmt: skip
    return StepState(id=sid, action="llm_call", status=status, output=out, duration_ms=ms,
                     started_at=T0, usage=Usage(input_tokens=tokens))  # fmt: skip


def test_compare_totals_and_step_deltas() -> None:
    a = state("a", RunStatus.completed,
              [step("x", StepStatus.completed, "hi"), step("y", StepStatus.completed, {"k": 1})],
              duration_ms=1000)  # fmt: skip
    b = state("b", RunStatus.failed,
              [step("x", StepStatus.completed, "hi", ms=300, tokens=25),
               step("y", StepStatus.failed, None, ms=50)],
              duration_ms=1500, error=RunError(code="STEP_FAILED", message="boom"))  # fmt: skip
    c = compare(a, b)
    assert (c.a.step_count, c.b.step_count, c.delta.duration_ms, c.delta.duration_pct) == (
        2, 2, 500, 50.0)  # fmt: skip
    assert c.delta.tokens == 15 and c.b.error == "STEP_FAILED: boom"
    x, y = c.steps
    assert (x.step_id, x.status_changed, x.duration_ms, x.tokens, x.output_changed) == (
        "x", False, 200, 15, False)  # fmt: skip
    assert (y.status_changed, y.output_changed) == (True, True)
    assert c.same_version and not c.notes


def test_compare_a_running_run_with_what_it_has_so_far() -> None:
    done = state("a", RunStatus.completed, [step("x", StepStatus.completed, "hi"),
                                            step("y", StepStatus.completed, "yo")],
                 duration_ms=1000)  # fmt: skip
    going = state("b", RunStatus.running, [step("x", StepStatus.completed, "hello"),
                                           step("y", StepStatus.running, None, ms=None)])  # fmt: skip
    c = compare(done, going, now=T0 + timedelta(seconds=3))
    assert c.b.partial and c.b.duration_ms == 3000 and "still running" in c.notes[0]
    x, y = c.steps
    assert x.output_changed is True and y.output_changed is None
    assert y.b is not None and y.b.duration_ms == 3000


def test_a_step_that_ran_in_one_run_only_changed() -> None:
    a = state("a", RunStatus.completed, [step("x", StepStatus.completed, "hi")])
    b = state("b", RunStatus.failed, [step("y", StepStatus.failed, None)])
    x, y = compare(a, b).steps
    assert (x.step_id, x.b, x.output_changed) == ("x", None, True)
    assert (y.step_id, y.a, y.output_changed, y.status_changed) == ("y", None, True, True)
    assert compare(a, b).notes == []
