"""Templates: text with `{{ expression }}` holes, over the same sandboxed language.

A template that is exactly one hole (`"{{ steps.fetch.output }}"`) yields the value
itself, not its text, so tool arguments can pass lists and objects through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from workflows.expressions import (
    ExpressionError,
    _to_str,
    evaluate,
    parse,
    references,
)

_HOLE = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_WHOLE = re.compile(r"^\s*\{\{(.*?)\}\}\s*$", re.DOTALL)


class TemplateError(ExpressionError):
    """The template is malformed."""


def holes(template: str) -> list[str]:
    """The expressions inside a template; raises TemplateError when braces do not match."""
    stripped = _HOLE.sub("", template)
    if "{{" in stripped or "}}" in stripped:
        raise TemplateError(f"unbalanced '{{{{' or '}}}}' in template {template[:80]!r}")
    found = _HOLE.findall(template)
    for expr in found:
        if not expr.strip():
            raise TemplateError(f"empty '{{{{ }}}}' in template {template[:80]!r}")
    return found


def check(template: str) -> list[str]:
    """Check a template's syntax; return the dotted names it reads."""
    names: list[str] = []
    for expr in holes(template):
        names.extend(references(parse(expr)))
    return names


def check_value(value: Any) -> list[str]:
    """Check every string template inside a nested value (dicts, lists)."""
    if isinstance(value, str):
        return check(value)
    if isinstance(value, Mapping):
        return [n for v in value.values() for n in check_value(v)]
    if isinstance(value, list):
        return [n for v in value for n in check_value(v)]
    return []


def render(template: str, namespace: Mapping[str, Any]) -> Any:
    whole = _WHOLE.match(template)
    if whole and len(holes(template)) == 1:
        return evaluate(whole.group(1), namespace)
    holes(template)
    return _HOLE.sub(lambda m: _to_str(evaluate(m.group(1), namespace)), template)


def render_text(template: str, namespace: Mapping[str, Any]) -> str:
    return _to_str(render(template, namespace))


def render_value(value: Any, namespace: Mapping[str, Any]) -> Any:
    """Render every template inside a nested value."""
    if isinstance(value, str):
        return render(value, namespace) if "{{" in value else value
    if isinstance(value, Mapping):
        return {k: render_value(v, namespace) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, namespace) for v in value]
    return value
