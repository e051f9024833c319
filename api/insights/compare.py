"""Two runs side by side: totals and, per step id, what changed between them.

Works on the runs' own states (`RunState`), so it sees step outputs and per-step
usage; a run still going is compared with what it has so far, and says so.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from workflows.models import RunState, StepState, StepStatus

RAN = (StepStatus.completed, StepStatus.failed, StepStatus.cancelled, StepStatus.running)
ENDED = (StepStatus.completed, StepStatus.failed, StepStatus.cancelled, StepStatus.skipped)


class RunSide(BaseModel):
    run_id: str
    definition_id: str
    definition_version: int
    status: str
    partial: bool  # still going: figures so far
    duration_ms: int | None
    tokens: int
    cost_usd: float
    step_count: int  # steps that ran (or are running)
    error: str | None = None


class StepSide(BaseModel):
    status: str
    duration_ms: int | None
    tokens: int
    cost_usd: float
    attempts: int
    output_digest: str | None  # sha256 of the output (JSON, sorted keys); None: no output


class StepDelta(BaseModel):
    step_id: str
    a: StepSide | None
    b: StepSide | None
    status_changed: bool
    duration_ms: int | None  # b - a
    tokens: int | None  # b - a
    output_changed: bool | None  # None: a side has not finished the step yet


class RunDelta(BaseModel):
    duration_ms: int | None  # b - a
    duration_pct: float | None
    tokens: int
    tokens_pct: float | None
    cost_usd: float
    cost_pct: float | None
    step_count: int


class RunComparison(BaseModel):
    a: RunSide
    b: RunSide
    delta: RunDelta
    same_definition: bool
    same_version: bool
    steps: list[StepDelta]
    notes: list[str] = Field(default_factory=list)


def compare(a: RunState, b: RunState, now: datetime | None = None) -> RunComparison:
    now = now or datetime.now(UTC)
    side_a, side_b = _side(a, now), _side(b, now)
    notes = [
        f"run {s.run_id} is still {s.status}: compared with what it has so far"
        for s in (side_a, side_b)
        if s.partial
    ]
    if a.definition_id != b.definition_id:
        notes.append(
            f"the runs are of different definitions ({a.definition_id}, {b.definition_id})"
        )
    elif a.definition_version != b.definition_version:
        notes.append(
            f"the runs are of different versions of {a.definition_id} "
            f"(v{a.definition_version}, v{b.definition_version})"
        )
    return RunComparison(
        a=side_a,
        b=side_b,
        delta=RunDelta(
            duration_ms=_diff(side_a.duration_ms, side_b.duration_ms),
            duration_pct=_pct(side_a.duration_ms, side_b.duration_ms),
            tokens=side_b.tokens - side_a.tokens,
            tokens_pct=_pct(side_a.tokens, side_b.tokens),
            cost_usd=round(side_b.cost_usd - side_a.cost_usd, 8),
            cost_pct=_pct(side_a.cost_usd, side_b.cost_usd),
            step_count=side_b.step_count - side_a.step_count,
        ),
        same_definition=a.definition_id == b.definition_id,
        same_version=(a.definition_id, a.definition_version)
        == (b.definition_id, b.definition_version),
        steps=[_step_delta(i, a, b, now) for i in _step_ids(a, b)],
        notes=notes,
    )


def _side(state: RunState, now: datetime) -> RunSide:
    partial = not state.status.terminal
    duration = state.duration_ms
    if duration is None and state.started_at is not None:
        end = state.completed_at or now
        duration = _ms(state.started_at, end)
    return RunSide(
        run_id=state.run_id,
        definition_id=state.definition_id,
        definition_version=state.definition_version,
        status=state.status.value,
        partial=partial,
        duration_ms=duration,
        tokens=state.usage.total_tokens,
        cost_usd=state.usage.cost_usd,
        step_count=sum(1 for s in state.steps if s.status in RAN),
        error=f"{state.error.code}: {state.error.message}" if state.error else None,
    )


def _step_ids(a: RunState, b: RunState) -> list[str]:
    ids = [s.id for s in a.steps]
    return ids + [s.id for s in b.steps if s.id not in ids]


def _find(state: RunState, step_id: str) -> StepState | None:
    return next((s for s in state.steps if s.id == step_id), None)


def _step_side(step: StepState | None, now: datetime) -> StepSide | None:
    if step is None:
        return None
    duration = step.duration_ms
    if duration is None and step.started_at is not None and step.status == StepStatus.running:
        duration = _ms(step.started_at, now)
    return StepSide(
        status=step.status.value,
        duration_ms=duration,
        tokens=step.usage.total_tokens,
        cost_usd=step.usage.cost_usd,
        attempts=step.attempts,
        output_digest=digest(step.output),
    )


def _step_delta(step_id: str, a: RunState, b: RunState, now: datetime) -> StepDelta:
    sa, sb = _find(a, step_id), _find(b, step_id)
    side_a, side_b = _step_side(sa, now), _step_side(sb, now)
    return StepDelta(
        step_id=step_id,
        a=side_a,
        b=side_b,
        status_changed=(side_a.status if side_a else None) != (side_b.status if side_b else None),
        duration_ms=_diff(*(s.duration_ms if s else None for s in (side_a, side_b))),
        tokens=_diff(*(s.tokens if s else None for s in (side_a, side_b))),
        output_changed=_output_changed(sa, a, sb, b),
    )


def _output_changed(
    sa: StepState | None, a: RunState, sb: StepState | None, b: RunState
) -> bool | None:
    if not (_settled(sa, a) and _settled(sb, b)):
        return None
    if _ran(sa) != _ran(sb):
        return True  # the step ran in one run only
    return digest(sa.output if sa else None) != digest(sb.output if sb else None)


def _ran(step: StepState | None) -> bool:
    return step is not None and step.status in RAN


def _settled(step: StepState | None, run: RunState) -> bool:
    """The step will not change any more: it ended, or its run did."""
    return run.status.terminal or (step is not None and step.status in ENDED)


def digest(output: Any) -> str | None:
    if output is None:
        return None
    text = json.dumps(output, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _diff(a: float | None, b: float | None) -> Any:
    return None if a is None or b is None else b - a


def _pct(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a == 0:
        return None
    return round((b - a) * 100 / a, 1)


def _ms(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds() * 1000)
