"""Checking a run's input against the definition's declared `inputs`.

Runs are checked when they start (by the gateway, and again by the workflow), so a
bad input is a 422 before anything runs, naming every field that is wrong.
"""

from __future__ import annotations

from typing import Any

from workflows.definition import InputSpec, TaskDefinition

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


class InputError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _coerce(name: str, spec: InputSpec, value: Any) -> tuple[Any, str | None]:
    if spec.type == "any" or value is None:
        return value, None
    expected = _TYPES[spec.type]
    if isinstance(value, bool) and spec.type in ("number", "integer"):
        return value, f"input '{name}' must be {spec.type}, got boolean"
    if isinstance(value, expected):
        return value, None
    if isinstance(value, str):  # CLI `--input k=v` sends strings
        try:
            if spec.type == "integer":
                return int(value), None
            if spec.type == "number":
                return float(value), None
            if spec.type == "boolean" and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes"), None
        except ValueError:
            pass
    return value, f"input '{name}' must be {spec.type}, got {type(value).__name__}"


def resolve_inputs(definition: TaskDefinition, given: dict[str, Any]) -> dict[str, Any]:
    """Apply defaults and check types; raises InputError listing every problem."""
    problems: list[str] = []
    result = dict(given)
    for name, spec in definition.inputs.items():
        if name not in result or result[name] is None:
            if spec.default is not None:
                result[name] = spec.default
            elif spec.required:
                problems.append(f"input '{name}' is required")
            continue
        value, problem = _coerce(name, spec, result[name])
        if problem:
            problems.append(problem)
            continue
        if spec.enum is not None and value not in spec.enum:
            problems.append(f"input '{name}' must be one of {spec.enum}, got {value!r}")
        result[name] = value
    if problems:
        raise InputError(problems)
    return result
