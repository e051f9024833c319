"""Declared inputs: defaults, required, types, coercion from CLI strings, enums."""

from __future__ import annotations

import pytest

from workflows.definition import TaskDefinition
from workflows.inputs import InputError, resolve_inputs

DEFN = TaskDefinition.model_validate(
    {
        "id": "t",
        "inputs": {
            "name": {"type": "string", "required": True},
            "lang": {"type": "string", "default": "en", "enum": ["en", "fr"]},
            "n": {"type": "integer", "default": 1},
            "ratio": {"type": "number"},
            "flag": {"type": "boolean"},
            "tags": {"type": "array"},
            "obj": {"type": "object"},
            "anything": {"type": "any"},
        },
        "steps": [{"id": "a", "action": "llm_call", "prompt": "x"}],
    }
)


def test_defaults_applied() -> None:
    assert resolve_inputs(DEFN, {"name": "Ada"}) == {"name": "Ada", "lang": "en", "n": 1}


def test_cli_strings_are_coerced() -> None:
    got = resolve_inputs(DEFN, {"name": "Ada", "n": "7", "ratio": "0.5", "flag": "yes"})
    assert got["n"] == 7 and got["ratio"] == 0.5 and got["flag"] is True


def test_extra_inputs_pass_through() -> None:
    assert resolve_inputs(DEFN, {"name": "A", "extra": 1})["extra"] == 1


def test_every_problem_listed() -> None:
    with pytest.raises(InputError) as e:
        resolve_inputs(
            DEFN,
            {"lang": "de", "n": "seven", "flag": 3, "tags": "x", "obj": [], "ratio": True},
        )
    problems = e.value.problems
    assert "input 'name' is required" in problems
    assert any("'lang' must be one of" in p for p in problems)
    assert "input 'n' must be integer, got str" in problems
    assert any(p.startswith("input 'flag' must be boolean") for p in problems)
    assert any(p.startswith("input 'tags' must be array") for p in problems)
    assert any(p.startswith("input 'obj' must be object") for p in problems)
    assert "input 'ratio' must be number, got boolean" in problems
    assert len(problems) == 7
    assert "input 'name' is required" in str(e.value)


def test_any_accepts_anything_and_none_uses_default() -> None:
    got = resolve_inputs(DEFN, {"name": "A", "anything": {"x": [1]}, "lang": None})
    assert got["anything"] == {"x": [1]} and got["lang"] == "en"
