"""The expression budget: no expression builds more than a few MB or loops for long, and
every failure inside evaluation is the evaluator's own `ExpressionError`."""

from __future__ import annotations

import time
import tracemalloc
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.expressions import (
    FUNCTIONS,
    MAX_WORK,
    ExpressionError,
    evaluate,
    measure,
)
from workflows.templates import render

NS: dict[str, Any] = {
    "input": {"s": "abc", "x": 5, "xs": [1, 2, 3], "o": {"k": "v"}, "f": 1.5},
    "steps": {"a": {"output": "hello"}},
}

# The findings of issue 13: each raised something other than ExpressionError (or ran
# until killed), so the workflow task failed and retried forever.
FINDINGS = [
    "1000000000 * 'a'",
    "'a' * 1000000000",
    "json([[1]*999999]*999999)",
    "[[1]*999999]*999999",
    " ".join(["not"] * 900) + " true",
    "-input.s",
    "+input.o",
    "input.x[1:2]",
    "input.xs[::0]",
    "{[1]: 2}",
    "round(1e308 * 10)",
    "from_json('[' * 100000)",
    "replace(input.s * 300000, '', input.s * 300000)",
    "join([1] * 999999, 'abcdefgh')",
    "'%0999999999d' % 1",
    "'%.999999999f' % 1",
    "'%*d' % [999999999, 1]",
    "sum([[1] * 1000] * 1000, [])",
    "[" * 150 + "1" + "]" * 150,
    "-" * 3000 + "1",
]


@pytest.mark.parametrize("expr", FINDINGS)
def test_findings_raise_the_evaluators_error_fast(expr: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(ExpressionError):
            evaluate(expr, NS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"{expr[:40]!r} peaked at {peak / 1e6:.0f} MB"


@pytest.mark.parametrize(
    "template",
    ["{{ 1000000000 * 'a' }}", "x {{ -input.s }} y", "{{ input.x[1:2] }}"],
)
def test_templates_fail_with_the_evaluators_error(template: str) -> None:
    with pytest.raises(ExpressionError):
        render(template, NS)


def test_measure_stops_at_its_limit() -> None:
    shared = [[1] * 1000] * 1000
    assert measure(shared, 5000) > 5000
    # dict 2*1+1, key 'a' 1, list 2+1, 'xy' 2, 3 one unit
    assert measure({"a": ["xy", 3]}) == 3 + 1 + 3 + 2 + 1


def test_ordinary_expressions_still_work() -> None:
    assert evaluate("input.s * 3", NS) == "abcabcabc"
    assert evaluate("3 * input.xs", NS) == [1, 2, 3] * 3
    assert evaluate("join(input.xs, '-')", NS) == "1-2-3"
    assert evaluate("replace(input.s, 'b', 'BB')", NS) == "aBBc"
    assert evaluate("sum(input.xs)", NS) == 6
    assert evaluate("sum(input.xs, 10)", NS) == 16
    assert evaluate("sum([[1], [2]], [])", NS) == [1, 2]
    assert evaluate("'%03d items' % 7", NS) == "007 items"
    assert evaluate("-input.x + +input.f", NS) == -3.5
    assert evaluate("input.s[1:]", NS) == "bc"
    assert evaluate("len(json([[1] * 1000] * 100))", NS) > 1000
    assert evaluate("{'a': 1, 2: input.s}", NS) == {"a": 1, 2: "abc"}


def test_work_is_counted_across_an_evaluation() -> None:
    big = "x" * 900_000
    # each `len(...)` charges its argument's size: enough of them run out of budget
    expr = " + ".join(["len(input.big)"] * (MAX_WORK // 900_000 + 2))
    with pytest.raises(ExpressionError, match="too much work"):
        evaluate(expr, {"input": {"big": big}})


# ------------------------------------------------------------------ property test
_LEAVES = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(
        ["input.s", "input.x", "input.xs", "input.o", "input.f", "steps.a.output", "input.nope"]
    ),
    st.sampled_from(["'a'", "''", "'{{'", "true", "null", "[]", "[1]", "{}", "1.5", "999999"]),
)
_FUNCS = sorted(FUNCTIONS)


def _compose(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binop = st.tuples(
        children, st.sampled_from(["+", "-", "*", "/", "//", "%", "|"]), children
    ).map(lambda t: f"({t[0]} {t[1]} {t[2]})" if t[1] != "|" else f"({t[0]} | {_FUNCS[0]})")
    compare = st.tuples(
        children, st.sampled_from(["==", "!=", "<", ">=", "in", "not in", "is"]), children
    ).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
    unary = st.tuples(st.sampled_from(["not ", "-", "+"]), children).map(lambda t: t[0] + t[1])
    call = st.tuples(st.sampled_from(_FUNCS), st.lists(children, max_size=3)).map(
        lambda t: f"{t[0]}({', '.join(t[1])})"
    )
    filt = st.tuples(children, st.sampled_from(_FUNCS)).map(lambda t: f"({t[0]} | {t[1]})")
    sub = st.tuples(children, children).map(lambda t: f"{t[0]}[{t[1]}]")
    sl = st.tuples(children, children, children).map(lambda t: f"{t[0]}[{t[1]}:{t[2]}]")
    lst = st.lists(children, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]")
    dct = st.lists(st.tuples(children, children), max_size=3).map(
        lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
    )
    ifexp = st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})")
    boolop = st.tuples(children, st.sampled_from(["and", "or"]), children).map(
        lambda t: f"({t[0]} {t[1]} {t[2]})"
    )
    return st.one_of(binop, compare, unary, call, filt, sub, sl, lst, dct, ifexp, boolop)


EXPRESSIONS = st.recursive(_LEAVES, _compose, max_leaves=25)


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(EXPRESSIONS)
def test_generated_expressions_evaluate_or_raise_the_evaluators_error(expr: str) -> None:
    tracemalloc.start()
    started = time.process_time()
    try:
        try:
            evaluate(expr, NS)
        except ExpressionError:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # generous bounds (a loaded machine, tracemalloc's own overhead): no blow-up
    assert peak < 64 * 1024 * 1024, f"{expr!r} peaked at {peak / 1e6:.0f} MB"
    assert time.process_time() - started < 10, expr
