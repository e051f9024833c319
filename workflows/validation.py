"""Validation on save: every problem in a definition at once, each naming its step.

The gateway runs this on `PUT /v1/definitions/{id}` and `POST .../validate`; the
worker never sees an invalid definition. `resolve` looks up other definitions so
sub-task references and cycles (A -> B -> A) are checked across the store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from workflows import graph
from workflows.definition import (
    END,
    ApprovalStep,
    ConditionalStep,
    LlmCallStep,
    NotifyStep,
    ParallelStep,
    Step,
    SubTaskStep,
    TaskDefinition,
    ToolCallStep,
    WaitStep,
)
from workflows.expressions import ExpressionError, parse
from workflows.mcp_tools import is_mcp, tool_allowed
from workflows.mcp_tools import split as split_mcp
from workflows.templates import check, check_value
from workflows.tool_rules import problems as policy_problems

Resolver = Callable[[str], TaskDefinition | None]


@dataclass(frozen=True)
class Problem:
    message: str
    step_id: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = f"step '{self.step_id}'" if self.step_id else "definition"
        if self.field:
            where += f" ({self.field})"
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, str | None]:
        return {"step_id": self.step_id, "field": self.field, "message": self.message}


def validate(
    definition: TaskDefinition,
    known_tools: set[str] | None = None,
    resolve: Resolver | None = None,
) -> list[Problem]:
    problems = _check_steps(definition, definition.steps, known_tools, prefix="")
    problems += _check_tools(definition, known_tools)
    problems += [
        Problem(message, None, field)
        for field, message in policy_problems(definition.tool_policies, "tool_policies")
    ]
    if resolve is not None:
        problems += _check_subtasks(definition, resolve)
    return problems


def _check_steps(
    definition: TaskDefinition,
    steps: Sequence[Step],
    known_tools: set[str] | None,
    prefix: str,
    outer: frozenset[str] = frozenset(),
) -> list[Problem]:
    """Check a step list; `outer` are step ids of an enclosing run whose outputs it may read."""
    out: list[Problem] = []
    ids = [s.id for s in steps]
    seen: set[str] = set()
    for s in steps:
        if s.id in seen:
            out.append(Problem("duplicate step id", prefix + s.id, "id"))
        if s.id == END:
            out.append(Problem("'end' is reserved and cannot be a step id", prefix + s.id, "id"))
        seen.add(s.id)
    own = set(ids)  # built once: per step it made validation quadratic in the steps
    visible = own | outer
    for s in steps:
        out += _check_refs(s, own, prefix)
        out += _check_step(definition, s, visible, known_tools, prefix)
    if not any(p.field == "id" for p in out):  # the graph needs unique ids
        reach = graph.reachable(steps)
        for s in steps:
            if s.id not in reach:
                out.append(Problem("unreachable: no step leads here", prefix + s.id))
        for loop in graph.closed_loops(steps):
            path = " -> ".join([*loop, loop[0]])
            out.append(
                Problem(
                    f"steps loop forever ({path}): add a conditional that can leave the loop",
                    prefix + loop[0],
                )
            )
    return out


def _check_refs(s: Step, ids: set[str], prefix: str) -> list[Problem]:
    refs: list[tuple[str, str | None]] = [("next", s.next)]
    if isinstance(s, ConditionalStep):
        refs += [("then", s.then), ("else", s.else_)]
    if isinstance(s, ApprovalStep):
        refs.append(("on_reject", s.on_reject))
    return [
        Problem(f"{field} refers to unknown step '{target}'", prefix + s.id, field)
        for field, target in refs
        if target is not None and target != END and target not in ids
    ]


def _template_problems(
    value: object, field: str, step_id: str, ids: set[str], definition: TaskDefinition
) -> list[Problem]:
    try:
        names = check_value(value) if not isinstance(value, str) else check(value)
    except ExpressionError as e:
        return [Problem(f"template error: {e}", step_id, field)]
    out = []
    for name in names:
        parts = name.split(".")
        if parts[0] == "steps" and len(parts) > 1 and parts[1] not in ids:
            out.append(Problem(f"template reads unknown step '{parts[1]}'", step_id, field))
        if (
            parts[0] == "input"
            and len(parts) > 1
            and definition.inputs
            and parts[1] not in definition.inputs
        ):
            out.append(Problem(f"template reads undeclared input '{parts[1]}'", step_id, field))
    return out


def _check_step(
    definition: TaskDefinition,
    s: Step,
    ids: set[str],
    known_tools: set[str] | None,
    prefix: str,
) -> list[Problem]:
    sid = prefix + s.id
    out: list[Problem] = []

    def tpl(value: object, field: str) -> None:
        out.extend(_template_problems(value, field, sid, ids, definition))

    if isinstance(s, LlmCallStep):
        tpl(s.prompt, "prompt")
        if s.system:
            tpl(s.system, "system")
        for t in s.tools or []:
            if not tool_allowed(t, definition.tools):
                out.append(Problem(f"tool '{t}' is not in the definition's tools", sid, "tools"))
    elif isinstance(s, ToolCallStep):
        tpl(s.args, "args")
        if not tool_allowed(s.tool, definition.tools):
            out.append(
                Problem(f"tool '{s.tool}' is not allowed: add it to the definition's tools", sid)
            )
        elif is_mcp(s.tool):
            if split_mcp(s.tool) is None or s.tool.endswith("/*"):
                out.append(Problem(f"'{s.tool}' is not an MCP tool: mcp:<server>/<tool>", sid))
        elif known_tools is not None and s.tool not in known_tools:
            out.append(Problem(f"unknown tool '{s.tool}'", sid, "tool"))
    elif isinstance(s, ConditionalStep):
        try:
            parse(s.condition)
        except ExpressionError as e:
            out.append(Problem(f"condition error: {e}", sid, "condition"))
        else:
            tpl("{{" + s.condition + "}}", "condition")
    elif isinstance(s, SubTaskStep):
        tpl(s.input, "input")
    elif isinstance(s, ParallelStep):
        names = [b.name for b in s.branches if b.name]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            out.append(Problem(f"duplicate branch name '{dup}'", sid, "branches"))
        for i, b in enumerate(s.branches):
            tpl(b.input, f"branches[{i}].input")
            if b.steps:
                inner = definition.model_copy(update={"steps": b.steps, "inputs": {}})
                out += _check_steps(
                    inner, b.steps, known_tools, f"{sid}/{i}/", outer=frozenset(ids)
                )
    elif isinstance(s, ApprovalStep):
        if s.prompt:
            tpl(s.prompt, "prompt")
        if s.min_approvals > len(s.approvers) and not any(
            a.startswith("group:") for a in s.approvers
        ):
            out.append(
                Problem(
                    "min_approvals is larger than the number of approvers", sid, "min_approvals"
                )
            )
    elif isinstance(s, WaitStep):
        if s.until:
            tpl(s.until, "until")
            if "{{" not in s.until:
                out += _check_until(s.until, sid)
    elif isinstance(s, NotifyStep):
        tpl(s.message, "message")
    return out


def _check_until(until: str, sid: str) -> list[Problem]:
    try:
        at = datetime.fromisoformat(until.replace("Z", "+00:00"))
    except ValueError:
        return [Problem(f"'until' is not an ISO 8601 time: {until!r}", sid, "until")]
    if at.tzinfo is None:
        return [Problem(f"'until' needs a time zone (e.g. 'Z'): {until!r}", sid, "until")]
    return []


def _check_tools(definition: TaskDefinition, known_tools: set[str] | None) -> list[Problem]:
    """Built-in names must be known; MCP names well-formed (whether the server exists
    and offers the tool is the gateway's check: it needs settings and the server)."""
    out = [
        Problem(
            f"'{t}' is not an MCP tool name: use mcp:<server>/<tool> or mcp:<server>/*",
            None,
            "tools",
        )
        for t in definition.tools
        if is_mcp(t) and split_mcp(t) is None
    ]
    if known_tools is None:
        return out
    return out + [
        Problem(f"unknown tool '{t}'", None, "tools")
        for t in definition.tools
        if not is_mcp(t) and t not in known_tools
    ]


def _check_subtasks(definition: TaskDefinition, resolve: Resolver) -> list[Problem]:
    out: list[Problem] = []
    for ref in definition.referenced_tasks():
        if ref != definition.id and resolve(ref) is None:
            out.append(Problem(f"sub-task refers to unknown definition '{ref}'", None, "task"))
    cycle = find_cycle(definition, resolve)
    if cycle:
        out.append(Problem(f"sub-task cycle: {' -> '.join(cycle)}", None, "task"))
    return out


def find_cycle(root: TaskDefinition, resolve: Resolver) -> list[str] | None:
    """A path of definition ids that returns to one already on it, or None (walked
    without recursion: a long chain of sub-tasks must not pass the recursion limit)."""

    def children(def_id: str) -> list[str]:
        d = root if def_id == root.id else resolve(def_id)
        return d.referenced_tasks() if d else []

    path: list[str] = [root.id]
    on_path = {root.id}
    done: set[str] = set()
    work: list[tuple[str, list[str]]] = [(root.id, children(root.id))]
    while work:
        node, todo = work[-1]
        if not todo:
            work.pop()
            path.pop()
            on_path.discard(node)
            done.add(node)
            continue
        child = todo.pop(0)
        if child in on_path:
            return [*path[path.index(child) :], child]
        if child in done:
            continue
        path.append(child)
        on_path.add(child)
        work.append((child, children(child)))
    return None
