"""The step graph of a run, from its definition and its live state.

A list of nodes drawn top to bottom in HTML/CSS: each step with its status; a
conditional with its `then`/`else` targets; a parallel step as a fork, its branches
side by side (each linking to its child run) and a join; a sub-task linking to its
child run. Waiting states (approval, wait, children) get their own colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workflows.definition import (
    ApprovalStep,
    ConditionalStep,
    ParallelStep,
    SubTaskStep,
    TaskDefinition,
    WaitStep,
)
from workflows.models import ChildRun, RunState, RunStatus

WAITING_RUN = {
    RunStatus.awaiting_approval: "approval",
    RunStatus.awaiting_subtask: "sub-task",
    RunStatus.awaiting_parallel: "branches",
}


@dataclass
class Branch:
    name: str
    run_id: str | None
    status: str
    task: str | None


@dataclass
class Node:
    id: str
    title: str
    action: str
    status: str
    waiting: str | None = None
    detail: str | None = None
    then: str | None = None
    else_: str | None = None
    child: ChildRun | None = None
    branches: list[Branch] = field(default_factory=list)
    tokens: int = 0
    cost: float = 0.0
    duration_ms: int | None = None


def build(definition: TaskDefinition | None, state: RunState) -> list[Node]:
    steps = {s.id: s for s in state.steps}
    children: dict[str, list[ChildRun]] = {}
    for c in state.children:
        children.setdefault(c.step_id, []).append(c)
    if definition is None:  # definition gone from the store: draw what the run knows
        return [
            Node(
                s.id,
                s.label or s.id,
                s.action,
                s.status.value,
                tokens=s.usage.total_tokens,
                cost=s.usage.cost_usd,
                duration_ms=s.duration_ms,
            )
            for s in state.steps
        ]
    nodes: list[Node] = []
    for step in definition.steps:
        st = steps.get(step.id)
        status = st.status.value if st else "pending"
        node = Node(step.id, step.title, step.action, status)
        if st is not None:
            node.tokens, node.cost = st.usage.total_tokens, st.usage.cost_usd
            node.duration_ms = st.duration_ms
        if status == "running" and state.current_step == step.id:
            if isinstance(step, ApprovalStep):
                node.waiting = "waiting for approval"
            elif isinstance(step, WaitStep):
                node.waiting = "waiting"
            elif state.status in WAITING_RUN:
                node.waiting = f"waiting for {WAITING_RUN[state.status]}"
        if isinstance(step, ConditionalStep):
            node.detail = step.condition
            node.then, node.else_ = step.then, step.else_
        elif isinstance(step, SubTaskStep):
            node.detail = f"sub-task {step.task}"
            kids = children.get(step.id, [])
            node.child = kids[-1] if kids else None
        elif isinstance(step, ParallelStep):
            by_branch = {c.branch: c for c in children.get(step.id, [])}
            for i, b in enumerate(step.branches):
                key = b.name or str(i)
                kid = by_branch.get(key)
                node.branches.append(
                    Branch(
                        key,
                        kid.run_id if kid else None,
                        kid.status.value if kid else "pending",
                        b.task,
                    )
                )
        nodes.append(node)
    return nodes
