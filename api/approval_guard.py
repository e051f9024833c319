"""Refusing definition versions that weaken an approval gate, unless the author may.

Why: an approval step is only as strong as the definition that declares it. Without
this, a writer who may not approve could publish a version with `timeout: 0s,
on_timeout: approve` (or without the step) and the next run would pass the gate
with no approver. So `PUT /v1/definitions/{id}` compares the new version's approval
steps with the latest stored version's (a deleted definition's too) and refuses a
weakening with 403 unless the author may approve that step (on its approvers list
by identity or group) or has `tasks:admin`.

What counts as weakening, per approval step (matched by step id, inline parallel
branch steps included): the step is removed or is no longer an approval; its
approvers change (an added approver weakens as much as a removed one: it lets
someone new decide); `min_approvals` goes down; `on_timeout` becomes `approve`;
its timeout is under `DURATASK_APPROVAL_MIN_TIMEOUT` (checked on every approval
step of every version, new ones included).

Tool policies (docs/approvals.md#tool-policies) are gates too: a version that keeps
the stored `tool_policies` only as they were, with rules added after them, is never
weaker (the first matching rule decides, so a rule added last only sees calls that
were allowed anyway). Any other change to a list holding `approve` or `deny` rules
is a weakening that needs an approver of every stored `approve` rule (or
`tasks:admin`; a stored `deny` rule has no approvers, so only an admin may change it).
An `approve` rule's timeout is held to the same floor as an approval step's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from api.errors import ApiError
from duratask.access import Caller
from workflows.approvals import is_allowed, normalise, timeout_of
from workflows.definition import ApprovalStep, ParallelStep, Step, TaskDefinition
from workflows.durations import parse_duration


@dataclass(frozen=True)
class Weakening:
    step_id: str
    reason: str
    approvers: tuple[str, ...]  # who may approve it (the stored step's list, else the new one's)


def approval_steps(steps: Iterable[Step], prefix: str = "") -> Iterator[tuple[str, Step]]:
    """Every step by its path id (`branch-step` ids are prefixed by the parallel step)."""
    for s in steps:
        yield prefix + s.id, s
        if isinstance(s, ParallelStep):
            for i, b in enumerate(s.branches):
                if b.steps:
                    yield from approval_steps(b.steps, f"{prefix}{s.id}[{i}].")


def _approvals(d: TaskDefinition | None) -> dict[str, ApprovalStep]:
    if d is None:
        return {}
    return {k: s for k, s in approval_steps(d.steps) if isinstance(s, ApprovalStep)}


def _all_steps(d: TaskDefinition) -> dict[str, Step]:
    return dict(approval_steps(d.steps))


def weakenings(
    old: TaskDefinition | None, new: TaskDefinition, floor: timedelta | None
) -> list[Weakening]:
    found: list[Weakening] = []
    before, after, new_steps = _approvals(old), _approvals(new), _all_steps(new)
    for key, was in before.items():
        who = tuple(was.approvers)
        now = after.get(key)
        if now is None:
            what = "removed" if key not in new_steps else "no longer an approval step"
            found.append(Weakening(key, f"the approval step is {what}", who))
            continue
        old_set = {normalise(a) for a in was.approvers}
        new_set = {normalise(a) for a in now.approvers}
        if old_set != new_set:
            gone, added = sorted(old_set - new_set), sorted(new_set - old_set)
            parts = ([f"removes {', '.join(gone)}"] if gone else []) + (
                [f"adds {', '.join(added)}"] if added else []
            )
            found.append(Weakening(key, f"its approvers change ({'; '.join(parts)})", who))
        if now.min_approvals < was.min_approvals:
            why = f"min_approvals goes down from {was.min_approvals} to {now.min_approvals}"
            found.append(Weakening(key, why, who))
        if now.on_timeout == "approve" and was.on_timeout != "approve":
            found.append(Weakening(key, "on_timeout becomes 'approve'", who))
    found += _policy_weakenings(old, new, floor)
    if floor is not None:
        for key, step in after.items():
            if timeout_of(step) < floor:
                who = tuple(before[key].approvers) if key in before else tuple(step.approvers)
                why = f"its timeout {step.timeout} is under the floor of {floor}"
                found.append(Weakening(key, why, who))
    return found


def _policy_weakenings(
    old: TaskDefinition | None, new: TaskDefinition, floor: timedelta | None
) -> list[Weakening]:
    found: list[Weakening] = []
    was = old.tool_policies if old is not None else []
    gates = [r for r in was if r.action in ("approve", "deny")]
    if gates and new.tool_policies[: len(was)] != was:
        why = "the tool policies change other than by adding rules after the stored ones"
        for i, rule in enumerate(was):  # each stored gate's approvers must agree
            if rule.action in ("approve", "deny"):
                what = f"{why} (stored rule {i}: {rule.action} {rule.tool})"
                found.append(Weakening(f"tool_policies[{i}]", what, tuple(rule.approvers)))
    if floor is not None:
        for i, rule in enumerate(new.tool_policies):
            if rule.action != "approve":
                continue
            timeout = parse_duration(rule.timeout) if rule.timeout is not None else None
            if timeout is not None and timeout < floor:
                why = f"its timeout {rule.timeout} is under the floor of {floor}"
                found.append(Weakening(f"tool_policies[{i}]", why, tuple(rule.approvers)))
    return found


def check(
    who: Caller, old: TaskDefinition | None, new: TaskDefinition, min_timeout: str | None
) -> None:
    """Raise 403 if `new` weakens an approval step that `who` may not approve."""
    if who.has("tasks:admin"):
        return
    floor = parse_duration(min_timeout) if min_timeout else None
    denied = [
        w
        for w in weakenings(old, new, floor)
        if not is_allowed(w.approvers, who.identity, who.groups)
    ]
    if denied:
        each = "; ".join(f"step '{w.step_id}': {w.reason}" for w in denied)
        raise ApiError(
            403,
            f"'{who.identity}' may not weaken approval steps they may not approve ({each}); "
            "an approver of the step or a tasks:admin token can make this change",
            problems=[
                {
                    "field": w.step_id
                    if w.step_id.startswith("tool_policies")
                    else f"steps.{w.step_id}",
                    "message": w.reason,
                }
                for w in denied
            ],
        )
