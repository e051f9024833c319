"""Validation problems of a definition's YAML, placed on the lines they are about.

The YAML is composed into nodes (which keep their line numbers) and validated with
the same checks as `PUT /v1/definitions`; each problem's field path (`steps.2.then`,
or a step id plus a field) is walked through the nodes to find its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from api.errors import pydantic_problems
from workflows.definition import TaskDefinition
from workflows.validation import validate


@dataclass
class Line:
    number: int
    text: str
    problems: list[str] = field(default_factory=list)


def _child(node: Any, key: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == key:
                return v
    if isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
        return node.value[int(key)]
    return None


def _line_of(root: Any, path: list[str]) -> int:
    node, line = root, 0
    for part in path:
        nxt = _child(node, part)
        if nxt is None:
            break
        node, line = nxt, nxt.start_mark.line
    return line


def _step_path(root: Any, step_id: str) -> list[str]:
    steps = _child(root, "steps")
    if isinstance(steps, yaml.SequenceNode):
        for i, s in enumerate(steps.value):
            sid = _child(s, "id")
            if sid is not None and sid.value == step_id.split("/")[-1]:
                return ["steps", str(i)]
    return []


def check(text: str, known_tools: set[str] | None = None) -> list[Line]:
    lines = [Line(i + 1, t) for i, t in enumerate(text.splitlines() or [""])]
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = mark.line if mark is not None else 0
        lines[min(at, len(lines) - 1)].problems.append(f"not valid YAML: {e}")
        return lines
    if not isinstance(data, dict):
        lines[0].problems.append("a definition must be a mapping at the top level")
        return lines
    try:
        definition = TaskDefinition.model_validate(data)
    except ValidationError as e:
        for p in pydantic_problems(e):
            path = str(p.get("field") or "").split(".")
            at = _line_of(root, [x for x in path if x])
            lines[min(at, len(lines) - 1)].problems.append(f"{p.get('field')}: {p['message']}")
        return lines
    for prob in validate(definition, known_tools, None):
        path = _step_path(root, prob.step_id) if prob.step_id else []
        if prob.field:
            path += prob.field.split(".")
        at = _line_of(root, path)
        lines[min(at, len(lines) - 1)].problems.append(str(prob))
    return lines
