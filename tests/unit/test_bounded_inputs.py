"""Bounded inputs, below the gateway: linear template scanning, YAML aliases, document
depth, step and template limits, graph checks without recursion, duration bounds."""

from __future__ import annotations

import time

import pytest

from api.bodies import check_definition_limits, load_yaml, parse_document
from api.errors import ApiError
from duratask.settings import Settings
from workflows import graph
from workflows.definition import TaskDefinition
from workflows.durations import parse_duration
from workflows.templates import TemplateError, holes, render
from workflows.validation import find_cycle, validate

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]

# 524 bytes of nested aliases: 9 levels of 9 references, 9**9 nodes once expanded
ALIAS_BOMB = "\n".join(
    ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    + [
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]"
        for i in range(8)
    ]
).encode()


def test_a_page_of_open_braces_scans_in_linear_time() -> None:
    # the 96 kB case took 25.8 s with the lazy regex; linear scanning takes milliseconds
    started = time.process_time()
    for text in ("{{" * 500_000, "{{ input.a }}" + "{{" * 500_000, "a}}" * 300_000):
        with pytest.raises(TemplateError):
            holes(text)
    assert time.process_time() - started < 5


def test_scanning_keeps_the_template_rules() -> None:
    assert holes("a {{ x }} b {{y}}") == [" x ", "y"]
    assert render("{{ input.n }}", {"input": {"n": [1]}}) == [1]
    assert render(" {{ input.n }} ", {"input": {"n": [1]}}) == [1]
    assert render("n={{ input.n }}!", {"input": {"n": 2}}) == "n=2!"
    for bad in ("{{ x", "x }}", "{{ }}", "{}{{{ {{a}}}"):
        with pytest.raises(TemplateError):
            holes(bad)


def test_an_alias_bomb_is_refused_fast() -> None:
    assert len(ALIAS_BOMB) < 600
    started = time.process_time()
    with pytest.raises(ApiError) as e:
        parse_document(ALIAS_BOMB, "application/yaml", SETTINGS)
    assert e.value.status == 422 and "aliases" in e.value.detail
    assert time.process_time() - started < 2


def test_aliases_of_long_text_are_bounded_by_characters() -> None:
    # few nodes, but each alias repeats 50 kB: 6.9 MB once expanded was stored before
    doc = "t: &t " + "x" * 50_000 + "\nl: [" + ", ".join(["*t"] * 140) + "]\n"
    with pytest.raises(ApiError, match="characters"):
        parse_document(doc.encode(), "application/yaml", SETTINGS)


def test_recursive_aliases_are_refused() -> None:
    with pytest.raises(ApiError, match="recursive alias"):
        load_yaml(b"a: &a [*a]", 1000)
    with pytest.raises(ApiError, match="recursive alias"):
        load_yaml(b"a: &a {b: [1, *a]}", 1000)


def test_shared_aliases_within_the_budget_still_load() -> None:
    doc = b"base: &m {provider: scripted}\none: {model: *m}\ntwo: {<<: *m, name: x}\n"
    assert load_yaml(doc, 1000) == {
        "base": {"provider": "scripted"},
        "one": {"model": {"provider": "scripted"}},
        "two": {"provider": "scripted", "name": "x"},
    }


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(b"[" * 100_000 + b"]" * 100_000, "application/json"), (b"[" * 100_000, "text/yaml")],
)
def test_deep_documents_are_422(raw: bytes, kind: str) -> None:
    with pytest.raises(ApiError) as e:
        parse_document(raw, kind, SETTINGS)
    assert e.value.status == 422


def test_a_document_over_the_size_limit_is_413() -> None:
    s = Settings(max_definition_bytes=100, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ApiError) as e:
        parse_document(b"{}" + b" " * 200, "application/json", s)
    assert e.value.status == 413 and "100 bytes" in e.value.detail


def test_step_and_template_limits() -> None:
    steps = [{"id": f"s{i}", "action": "notify", "message": "x"} for i in range(1001)]
    with pytest.raises(ApiError, match="more than 1,000 steps"):
        check_definition_limits({"steps": steps}, SETTINGS)
    nested = [{"id": "p", "action": "parallel", "branches": [{"steps": steps[:600]}] * 2}]
    with pytest.raises(ApiError, match="steps"):
        check_definition_limits({"steps": nested}, SETTINGS)
    long = [{"id": "a", "action": "llm_call", "prompt": "x" * 70_000}]
    with pytest.raises(ApiError, match="prompt is longer than the limit of 65,536"):
        check_definition_limits({"steps": long}, SETTINGS)
    check_definition_limits({"steps": steps[:1000]}, SETTINGS)


def test_graph_checks_thousands_of_steps_without_recursion() -> None:
    n = 5000  # the recursive Tarjan passed the recursion limit at ~1,000 steps
    steps = [{"id": f"s{i}", "action": "notify", "message": "x"} for i in range(n)]
    steps[-1]["next"] = "s0"  # one loop through every step, with no way out
    defn = TaskDefinition.model_validate({"id": "big", "steps": steps})
    loops = graph.closed_loops(defn.steps)
    assert len(loops) == 1 and len(loops[0]) == n
    problems = validate(defn)
    assert any("loop forever" in p.message for p in problems)


def test_sub_task_cycles_found_without_recursion() -> None:
    n = 3000
    defs = {
        f"d{i}": TaskDefinition.model_validate(
            {"id": f"d{i}", "steps": [{"id": "a", "action": "sub_task", "task": f"d{i + 1}"}]}
        )
        for i in range(n)
    }
    defs[f"d{n}"] = TaskDefinition.model_validate(
        {"id": f"d{n}", "steps": [{"id": "a", "action": "sub_task", "task": "d0"}]}
    )
    cycle = find_cycle(defs["d0"], defs.get)
    assert cycle is not None and cycle[0] == cycle[-1] == "d0" and len(cycle) == n + 2


@pytest.mark.parametrize("value", ["99999999999w", 1e300, float("inf"), "9" * 300 + "s"])
def test_durations_past_the_limit_are_value_errors(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # pydantic turns it into a 422 problem
        TaskDefinition.model_validate(
            {"id": "t", "steps": [{"id": "w", "action": "wait", "duration": value}]}
        )
