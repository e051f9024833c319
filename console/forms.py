"""The start form generated from a definition's `inputs`, and reading it back.

Each input becomes a labelled control of its type (a select for an `enum`, a
checkbox for a boolean, a number field, a JSON text area for objects and arrays);
what comes back is converted to that type and then checked by the same
`resolve_inputs` the API uses, so the form cannot start what the API would refuse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import FormData

from workflows.definition import TaskDefinition


class FormProblem(Exception):
    def __init__(self, message: str, problems: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass
class InputField:
    name: str
    kind: str  # text | number | checkbox | select | json
    required: bool
    default: str
    description: str | None
    options: list[str]


def input_fields(definition: TaskDefinition) -> list[InputField]:
    out = []
    for name, spec in definition.inputs.items():
        if spec.enum:
            kind = "select"
        elif spec.type == "boolean":
            kind = "checkbox"
        elif spec.type in ("number", "integer"):
            kind = "number"
        elif spec.type in ("object", "array", "any"):
            kind = "json"
        else:
            kind = "text"
        default = spec.default
        shown = json.dumps(default) if kind == "json" and default is not None else default
        out.append(
            InputField(
                name,
                kind,
                spec.required,
                "" if shown is None else str(shown),
                spec.description,
                [str(o) for o in spec.enum or []],
            )
        )
    return out


def parse_inputs(definition: TaskDefinition, form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for f in input_fields(definition):
        spec = definition.inputs[f.name]
        raw = form.get(f"in.{f.name}")
        text = raw.strip() if isinstance(raw, str) else ""
        if f.kind == "checkbox":
            values[f.name] = text == "true"
            continue
        if text == "":
            continue  # the default applies, or resolve_inputs names the missing input
        try:
            if f.kind == "json":
                values[f.name] = json.loads(text)
            elif spec.type == "integer":
                values[f.name] = int(text)
            elif spec.type == "number":
                values[f.name] = float(text)
            elif f.kind == "select":
                values[f.name] = next((o for o in spec.enum or [] if str(o) == text), text)
            else:
                values[f.name] = text
        except ValueError as e:
            problems.append({"field": f"input.{f.name}", "message": str(e)})
    if problems:
        raise FormProblem("; ".join(f"{p['field']}: {p['message']}" for p in problems), problems)
    return values
