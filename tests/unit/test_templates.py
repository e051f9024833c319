"""The sandboxed expression and template language: what it allows, what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from workflows.expressions import (
    ExpressionError,
    MissingValueError,
    evaluate,
    evaluate_condition,
    parse,
    references,
)
from workflows.templates import TemplateError, check, check_value, render, render_text, render_value

NS: dict[str, Any] = {
    "input": {"name": "ada", "n": 3, "tags": ["a", "b"], "obj": {"k": "v"}},
    "steps": {"fetch": {"output": {"items": [1, 2, 3], "title": "Urgent: disk"}}},
    "run": {"id": "run-1", "owner": "agent-7"},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{ input.name }}", "Hello ada"),
        ("{{ input.name | upper }}", "ADA"),
        ("{{ input.name | title }}", "Ada"),
        ("{{ input.tags | join(', ') }}", "a, b"),
        ("{{ input.obj | json }}", '{"k": "v"}'),
        ("{{ steps.fetch.output.title | truncate(6) }}", "Urgent..."),
        ("{{ input.missing | default('none') }}", "none"),
        ("{{ input.name | default('none') }}", "ada"),
        ("{{ steps.fetch.output.items | len }}", "3"),
        ("n={{ input.n + 1 }}", "n=4"),
        ("{{ 'yes' if input.n > 2 else 'no' }}", "yes"),
        ("{{ run.owner }}/{{ run.id }}", "agent-7/run-1"),
        ("{{ input.tags[0] }}{{ input.tags[-1] }}", "ab"),
        ("{{ input['name'] }}", "ada"),
        ("{{ exists(input.nope) }}", "false"),
        ("no holes at all", "no holes at all"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render_text(template, NS) == expected


def test_whole_hole_keeps_the_value_type() -> None:
    assert render("{{ steps.fetch.output.items }}", NS) == [1, 2, 3]
    assert render_value({"a": ["{{ input.n }}", 5], "b": "x{{ input.n }}"}, NS) == {
        "a": [3, 5],
        "b": "x3",
    }


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("'Urgent' in steps.fetch.output.title", True),
        ("'calm' in steps.fetch.output.title", False),
        ("input.n >= 3 and not (input.name == 'bob')", True),
        ("input.n < 3 or false", False),
        ("len(input.tags) == 2", True),
        ("input.name | startswith('a')", True),
        ("null is none", True),
    ],
)
def test_conditions(condition: str, expected: bool) -> None:
    assert evaluate_condition(condition, NS) is expected


@pytest.mark.parametrize(
    ("expr", "name"),
    [
        ("input.nope", "input.nope"),
        ("steps.ghost.output", "steps.ghost"),
        ("steps.fetch.output.missing", "steps.fetch.output.missing"),
        ("other", "other"),
    ],
)
def test_missing_value_error_names_the_name(expr: str, name: str) -> None:
    with pytest.raises(MissingValueError) as e:
        evaluate(expr, NS)
    assert e.value.name == name
    assert name in str(e.value)


def test_missing_value_in_template_names_the_name() -> None:
    with pytest.raises(MissingValueError, match=r"input\.who"):
        render_text("Hi {{ input.who }}", NS)


@pytest.mark.parametrize(
    "expr",
    [
        "input.__class__",
        "input.name.__class__.__mro__",
        "__import__('os')",
        "_secret",
        "input.name.upper()",  # method call: only whitelisted plain functions
        "open('/etc/passwd')",
        "eval('1')",
        "getattr(input, 'x')",
        "[x for x in input.tags]",
        "lambda: 1",
        "(x := 1)",
        "input.name | system",
        "f'{input}'",
        "str(input, encoding='x')",
    ],
)
def test_sandbox_refuses(expr: str) -> None:
    with pytest.raises(ExpressionError):
        evaluate(expr, NS)


def test_sandbox_refuses_on_parse_too() -> None:
    with pytest.raises(ExpressionError, match="not allowed"):
        parse("input.__dict__")
    with pytest.raises(ExpressionError, match="unknown function"):
        parse("exec('1')")


def test_no_python_attributes_on_values() -> None:
    # a string value's attributes are not reachable: attribute access is only dict lookup
    with pytest.raises(MissingValueError):
        evaluate("input.name.upper", NS)


def test_overlong_expression_refused() -> None:
    with pytest.raises(ExpressionError, match="longer than"):
        parse("1 + " * 2000 + "1")


@pytest.mark.parametrize("template", ["{{ input.name ", "x }} y", "{{ }}", "{{ input. }}"])
def test_template_syntax_errors(template: str) -> None:
    with pytest.raises(ExpressionError):
        check(template)


def test_template_error_is_an_expression_error() -> None:
    with pytest.raises(TemplateError):
        check("{{ a")


def test_references_and_check() -> None:
    assert references(parse("steps.a.output | default(input.x)")) == ["input.x", "steps.a.output"]
    assert check("{{ input.a }} and {{ steps.b.output | upper }}") == ["input.a", "steps.b.output"]
    assert sorted(check_value({"k": ["{{ input.a }}"], "z": 1})) == ["input.a"]


def test_filter_errors_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="int"):
        evaluate("int('abc')", NS)


def test_deterministic_json_rendering() -> None:
    ns = {"input": {"obj": {"b": 1, "a": 2}}}
    assert render_text("{{ input.obj }}", ns) == '{"a": 2, "b": 1}'
