"""Validation on save: every problem at once, each naming its step."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from workflows.definition import TaskDefinition
from workflows.validation import Problem, find_cycle, validate

TOOLS = {"http_request", "echo", "notify"}


def d(steps: list[dict[str, Any]], **extra: Any) -> TaskDefinition:
    return TaskDefinition.model_validate({"id": extra.pop("id", "t"), "steps": steps, **extra})


def by_step(problems: list[Problem]) -> dict[str | None, list[str]]:
    out: dict[str | None, list[str]] = {}
    for p in problems:
        out.setdefault(p.step_id, []).append(p.message)
    return out


def test_valid_definition_has_no_problems() -> None:
    defn = d(
        [
            {"id": "a", "action": "llm_call", "prompt": "hi {{ input.name }}"},
            {
                "id": "b",
                "action": "conditional",
                "condition": "'x' in steps.a.output",
                "then": "c",
                "else": "end",
            },
            {
                "id": "c",
                "action": "tool_call",
                "tool": "echo",
                "args": {"v": "{{ steps.a.output }}"},
            },
            {"id": "w", "action": "wait", "duration": "5m"},
            {"id": "n", "action": "notify", "message": "done {{ steps.c.output }}"},
        ],
        inputs={"name": {"type": "string"}},
        tools=["echo"],
    )
    assert validate(defn, TOOLS, lambda _: None) == []


def test_all_problems_reported_at_once_each_naming_its_step() -> None:
    defn = d(
        [
            {"id": "a", "action": "llm_call", "prompt": "hi {{ input.name ", "next": "ghost"},
            {"id": "b", "action": "conditional", "condition": "steps.a.output ==", "then": "a"},
            {"id": "c", "action": "tool_call", "tool": "shell"},
            {"id": "e", "action": "tool_call", "tool": "mystery"},
            {"id": "n", "action": "notify", "message": "{{ steps.nope.output }}"},
        ],
        tools=["mystery"],
    )
    problems = validate(defn, TOOLS, lambda _: None)
    found = by_step(problems)
    assert any("unknown step 'ghost'" in m for m in found["a"])
    assert any("template error" in m for m in found["a"])
    assert any("condition error" in m for m in found["b"])
    assert any("'shell' is not allowed" in m for m in found["c"])
    assert any("unknown tool 'mystery'" in m for m in found["e"])
    assert any("unknown step 'nope'" in m for m in found["n"])
    # the definition-level list also flags the unknown tool
    assert any("unknown tool 'mystery'" in m for m in found[None])
    # and the rendered messages name the step
    assert "step 'a'" in str(next(p for p in problems if p.step_id == "a"))


def test_duplicate_step_ids() -> None:
    defn = d(
        [
            {"id": "a", "action": "llm_call", "prompt": "x"},
            {"id": "a", "action": "llm_call", "prompt": "y"},
        ]
    )
    problems = validate(defn, TOOLS)
    assert [(p.step_id, p.message) for p in problems] == [("a", "duplicate step id")]


def test_reserved_end_id() -> None:
    problems = validate(d([{"id": "end", "action": "llm_call", "prompt": "x"}]))
    assert any("reserved" in p.message and p.step_id == "end" for p in problems)


def test_unreachable_steps_reported_with_other_problems() -> None:
    defn = d(
        [
            {"id": "a", "action": "llm_call", "prompt": "x", "next": "end"},
            {"id": "orphan", "action": "llm_call", "prompt": "{{ steps.a.output"},
        ]
    )
    found = by_step(validate(defn, TOOLS))
    assert any("unreachable" in m for m in found["orphan"])
    assert any("template error" in m for m in found["orphan"])


def test_loop_without_exit_is_rejected() -> None:
    defn = d(
        [
            {"id": "a", "action": "llm_call", "prompt": "x"},
            {"id": "b", "action": "llm_call", "prompt": "y", "next": "a"},
        ]
    )
    problems = validate(defn, TOOLS)
    assert len(problems) == 1
    assert problems[0].step_id == "a"
    assert "loop forever (a -> b -> a)" in problems[0].message


def test_self_loop_is_rejected() -> None:
    defn = d([{"id": "a", "action": "wait", "duration": "1s", "next": "a"}])
    assert "loop forever" in validate(defn)[0].message


def test_loop_with_a_conditional_exit_is_accepted() -> None:
    defn = d(
        [
            {"id": "a", "action": "llm_call", "prompt": "x"},
            {
                "id": "check",
                "action": "conditional",
                "condition": "'ok' in steps.a.output",
                "then": "end",
                "else": "a",
            },
        ]
    )
    assert validate(defn, TOOLS) == []


def test_llm_step_tools_must_be_allowed() -> None:
    defn = d([{"id": "a", "action": "llm_call", "prompt": "x", "tools": ["http_request"]}])
    problems = validate(defn, TOOLS)
    assert problems and problems[0].step_id == "a" and problems[0].field == "tools"


def test_undeclared_input_is_flagged() -> None:
    defn = d(
        [{"id": "a", "action": "llm_call", "prompt": "{{ input.nme }}"}],
        inputs={"name": {"type": "string"}},
    )
    problems = validate(defn)
    assert problems[0].step_id == "a" and "undeclared input 'nme'" in problems[0].message


def test_unsafe_template_is_a_validation_error() -> None:
    defn = d([{"id": "a", "action": "llm_call", "prompt": "{{ input.__class__ }}"}])
    problems = validate(defn)
    assert problems[0].step_id == "a" and "not allowed" in problems[0].message


def test_sub_task_cycle_across_definitions() -> None:
    a = d([{"id": "call-b", "action": "sub_task", "task": "b"}], id="a")
    b = d([{"id": "call-a", "action": "sub_task", "task": "a"}], id="b")
    store = {"a": a, "b": b}
    problems = validate(a, TOOLS, store.get)
    assert any("sub-task cycle: a -> b -> a" in p.message for p in problems)
    assert find_cycle(b, store.get) == ["b", "a", "b"]


def test_sub_task_cycle_through_parallel_branch_and_unknown_reference() -> None:
    a = d(
        [
            {"id": "fan", "action": "parallel", "branches": [{"task": "b"}, {"task": "ghost"}]},
        ],
        id="a",
    )
    b = d([{"id": "back", "action": "sub_task", "task": "c"}], id="b")
    c = d([{"id": "back", "action": "sub_task", "task": "a"}], id="c")
    store = {"a": a, "b": b, "c": c}
    messages = [p.message for p in validate(a, TOOLS, store.get)]
    assert any("a -> b -> c -> a" in m for m in messages)
    assert any("unknown definition 'ghost'" in m for m in messages)


def test_no_cycle_for_a_diamond() -> None:
    a = d(
        [
            {"id": "x", "action": "sub_task", "task": "b"},
            {"id": "y", "action": "sub_task", "task": "c"},
        ],
        id="a",
    )
    b = d([{"id": "x", "action": "sub_task", "task": "c"}], id="b")
    c = d([{"id": "x", "action": "llm_call", "prompt": "leaf"}], id="c")
    assert validate(a, TOOLS, {"b": b, "c": c}.get) == []


def test_parallel_inline_branch_steps_are_checked_with_a_path() -> None:
    defn = d(
        [
            {
                "id": "fan",
                "action": "parallel",
                "branches": [{"steps": [{"id": "x", "action": "tool_call", "tool": "nope"}]}],
            },
        ]
    )
    problems = validate(defn, TOOLS)
    assert problems[0].step_id == "fan/0/x"


def test_approval_min_approvals() -> None:
    defn = d([{"id": "ok", "action": "approval", "approvers": ["ann"], "min_approvals": 2}])
    assert validate(defn)[0].field == "min_approvals"


@pytest.mark.parametrize(
    "step",
    [
        {"id": "w", "action": "wait"},  # neither duration nor until
        {"id": "w", "action": "wait", "duration": "5m", "until": "2030-01-01T00:00:00Z"},
        {"id": "w", "action": "wait", "duration": "soon"},
        {"id": "x", "action": "teleport"},
        {"id": "Bad Id", "action": "llm_call", "prompt": "x"},
        {"id": "x", "action": "llm_call"},  # no prompt
        {"id": "x", "action": "llm_call", "prompt": "x", "retry": {"max_attempts": 0}},
    ],
)
def test_schema_rejects_malformed_steps(step: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        d([step])


def test_every_action_is_accepted_by_the_schema() -> None:
    defn = d(
        [
            {
                "id": "a",
                "action": "llm_call",
                "prompt": "x",
                "model": {"provider": "scripted"},
                "system": "s",
                "max_steps": 3,
                "tools": [],
            },
            {"id": "b", "action": "tool_call", "tool": "echo", "args": {}},
            {"id": "c", "action": "conditional", "condition": "true", "then": "d", "else": "d"},
            {"id": "d", "action": "sub_task", "task": "other", "input": {"k": "{{ input.k }}"}},
            {"id": "e", "action": "parallel", "branches": [{"task": "other"}]},
            {
                "id": "f",
                "action": "approval",
                "approvers": ["ann"],
                "timeout": "1h",
                "on_timeout": "reject",
            },
            {"id": "g", "action": "wait", "until": "2030-01-01T00:00:00Z"},
            {"id": "h", "action": "notify", "message": "hi"},
        ],
        tools=["echo"],
        limits={"max_steps": 10, "timeout": "1h"},
    )
    assert [s.action for s in defn.steps] == [
        "llm_call",
        "tool_call",
        "conditional",
        "sub_task",
        "parallel",
        "approval",
        "wait",
        "notify",
    ]


@pytest.mark.parametrize(
    ("until", "problem"),
    [
        ("tomorrow", "not an ISO 8601 time"),
        ("2030-01-01T09:00:00", "needs a time zone"),
        ("2030-01-01T09:00:00Z", None),
        ("{{ input.at }}", None),  # a template: checked when the step runs
    ],
)
def test_wait_until_literal_is_checked(until: str, problem: str | None) -> None:
    problems = validate(d([{"id": "w", "action": "wait", "until": until}]))
    if problem is None:
        assert problems == []
    else:
        assert problems[0].step_id == "w" and problem in problems[0].message
