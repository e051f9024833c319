"""Templates: text with `{{ expression }}` holes, over the same sandboxed language.

A template that is exactly one hole (`"{{ steps.fetch.output }}"`) yields the value
itself, not its text, so tool arguments can pass lists and objects through.

Templates are scanned once, left to right, with `str.find`: a lazy regex over a text
full of `{{` with no `}}` restarts at every `{{` and takes quadratic time (a 96 kB
prompt of `{{` took 25 s), so the scan never backtracks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workflows.expressions import (
    ExpressionError,
    _to_str,
    evaluate,
    parse,
    references,
)


class TemplateError(ExpressionError):
    """The template is malformed."""


def _split(template: str) -> list[tuple[str, bool]]:
    """The template as (text, is_hole) pieces, in one linear pass.

    A hole runs from `{{` to the first `}}` after it (what `\\{\\{(.*?)\\}\\}` matched);
    braces left in the text around the holes (even across one) are unbalanced."""
    pieces: list[tuple[str, bool]] = []
    pos = 0
    while True:
        start = template.find("{{", pos)
        end = template.find("}}", start + 2) if start >= 0 else -1
        if end < 0:  # no hole from here on
            if pos < len(template):
                pieces.append((template[pos:], False))
            break
        if start > pos:
            pieces.append((template[pos:start], False))
        pieces.append((template[start + 2 : end], True))
        pos = end + 2
    rest = "".join(p for p, is_hole in pieces if not is_hole)
    if "{{" in rest or "}}" in rest:
        raise TemplateError(f"unbalanced '{{{{' or '}}}}' in template {template[:80]!r}")
    return pieces


def holes(template: str) -> list[str]:
    """The expressions inside a template; raises TemplateError when braces do not match."""
    found = [piece for piece, is_hole in _split(template) if is_hole]
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
    pieces = _split(template)
    hole_pieces = [p for p, is_hole in pieces if is_hole]
    holes(template)  # the same checks as on save
    if len(hole_pieces) == 1 and all(is_hole or not p.strip() for p, is_hole in pieces):
        return evaluate(hole_pieces[0], namespace)
    return "".join(_to_str(evaluate(p, namespace)) if is_hole else p for p, is_hole in pieces)


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
