"""A small, sandboxed expression language for conditions and templates.

Conditions (`'urgent' in steps.summarize.output`) and template holes
(`{{ input.lang | upper }}`) are Python-shaped expressions, parsed with `ast` and
evaluated by walking a whitelist of node types. There is no `eval`, no attribute
access to Python objects (dots read dictionary keys), no dunder names and no I/O,
so it is safe on user input and deterministic inside the workflow sandbox.

`a | f(x)` applies the filter `f` to `a` (`f(a, x)`), like Jinja.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Callable, Mapping
from typing import Any

MAX_EXPRESSION_CHARS = 4000
MAX_VALUE_CHARS = 1_000_000
ROOT_NAMES = ("input", "steps", "run", "item", "branch")
CONSTANTS = {"true": True, "false": False, "null": None, "none": None}


class ExpressionError(ValueError):
    """The expression is malformed or uses something that is not allowed."""


class MissingValueError(ExpressionError):
    """The expression read a name that has no value; `name` is its dotted path."""

    def __init__(self, name: str) -> None:
        super().__init__(f"'{name}' is not defined")
        self.name = name


def _to_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _join(items: Any, sep: str = ", ") -> str:
    return sep.join(_to_str(i) for i in items)


def _truncate(value: Any, length: int = 200) -> str:
    text = _to_str(value)
    return text if len(text) <= length else text[:length] + "..."


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "str": _to_str,
    "int": int,
    "float": float,
    "bool": bool,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sum": sum,
    "sorted": sorted,
    "list": list,
    "lower": lambda s: _to_str(s).lower(),
    "upper": lambda s: _to_str(s).upper(),
    "strip": lambda s: _to_str(s).strip(),
    "title": lambda s: _to_str(s).title(),
    "trim": lambda s: _to_str(s).strip(),
    "join": _join,
    "json": lambda v: json.dumps(v, sort_keys=True, ensure_ascii=False),
    "from_json": json.loads,
    "contains": lambda a, b: b in a,
    "startswith": lambda s, p: _to_str(s).startswith(p),
    "endswith": lambda s, p: _to_str(s).endswith(p),
    "replace": lambda s, a, b: _to_str(s).replace(a, b),
    "split": lambda s, sep=None: _to_str(s).split(sep),
    "truncate": _truncate,
    "keys": lambda d: list(d.keys()),
    "values": lambda d: list(d.values()),
    "first": lambda xs: xs[0] if xs else None,
    "last": lambda xs: xs[-1] if xs else None,
}
# `default(x, fallback)` and `exists(x)` are special forms: they see a missing value.
SPECIAL_FORMS = ("default", "exists")

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Compare, ast.IfExp, ast.Call, ast.Name, ast.Load, ast.Attribute,
    ast.Subscript, ast.Slice, ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.BitOr,
    *_BINOPS, *_CMPOPS,
)  # fmt: skip


def parse(source: str) -> ast.Expression:
    """Parse and check an expression; raises ExpressionError saying what is wrong."""
    if len(source) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as e:
        raise ExpressionError(f"syntax error in {source.strip()!r}: {e.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{type(node).__name__} is not allowed in {source.strip()!r}")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ExpressionError(f"name {node.id!r} is not allowed")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ExpressionError(f"attribute {node.attr!r} is not allowed")
        if isinstance(node, ast.Call):
            _check_call(node, source)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            _check_filter(node.right, source)
    return tree


def _check_call(node: ast.Call, source: str) -> None:
    if not isinstance(node.func, ast.Name):
        raise ExpressionError(f"only plain function calls are allowed in {source.strip()!r}")
    if node.func.id not in FUNCTIONS and node.func.id not in SPECIAL_FORMS:
        raise ExpressionError(f"unknown function {node.func.id!r}")
    if node.keywords:
        raise ExpressionError(f"keyword arguments are not supported in {source.strip()!r}")


def _check_filter(node: ast.expr, source: str) -> None:
    name = node.func if isinstance(node, ast.Call) else node
    if not isinstance(name, ast.Name) or (
        name.id not in FUNCTIONS and name.id not in SPECIAL_FORMS
    ):
        raise ExpressionError(f"unknown filter after '|' in {source.strip()!r}")


def references(tree: ast.AST) -> list[str]:
    """Dotted paths read by an expression, e.g. ['steps.summarize.output', 'input.lang']."""
    found: list[str] = []
    filter_names = {
        id(n.right.func if isinstance(n.right, ast.Call) else n.right)
        for n in ast.walk(tree)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Name):
            path = _dotted(node)
            if path and path.split(".")[0] in ROOT_NAMES:
                found.append(path)
        if (
            isinstance(node, ast.Name)
            and id(node) not in filter_names
            and node.id not in (*ROOT_NAMES, *CONSTANTS, *FUNCTIONS, *SPECIAL_FORMS)
        ):
            found.append(node.id)
    # keep the longest path for each root chain
    found = sorted(set(found), key=len, reverse=True)
    result: list[str] = []
    for path in found:
        if not any(other.startswith(path + ".") for other in result):
            result.append(path)
    return sorted(result)


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


class Evaluator:
    """Evaluates a checked expression tree against a namespace of plain data."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.ns = namespace

    def eval(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ExpressionError(f"{type(node).__name__} is not allowed")
        value = method(node)
        if isinstance(value, str | list) and len(value) > MAX_VALUE_CHARS:
            raise ExpressionError("expression result too large")
        return value

    def _Expression(self, node: ast.Expression) -> Any:
        return self.eval(node.body)

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        if node.id in self.ns:
            return self.ns[node.id]
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise MissingValueError(node.id)

    def _Attribute(self, node: ast.Attribute) -> Any:
        base = self.eval(node.value)
        if isinstance(base, Mapping) and node.attr in base:
            return base[node.attr]
        raise MissingValueError(_dotted(node) or node.attr)

    def _Subscript(self, node: ast.Subscript) -> Any:
        base = self.eval(node.value)
        if isinstance(node.slice, ast.Slice):
            s = node.slice
            lower = self.eval(s.lower) if s.lower else None
            upper = self.eval(s.upper) if s.upper else None
            step = self.eval(s.step) if s.step else None
            return base[lower:upper:step]
        key = self.eval(node.slice)
        try:
            return base[key]
        except (KeyError, IndexError, TypeError):
            raise MissingValueError(f"{_dotted(node.value) or '<value>'}[{key!r}]") from None

    def _List(self, node: ast.List) -> Any:
        return [self.eval(e) for e in node.elts]

    def _Tuple(self, node: ast.Tuple) -> Any:
        return [self.eval(e) for e in node.elts]

    def _Dict(self, node: ast.Dict) -> Any:
        return {
            self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True) if k
        }

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            result: Any = True
            for v in node.values:
                result = self.eval(v)
                if not result:
                    return result
            return result
        result = False
        for v in node.values:
            result = self.eval(v)
            if result:
                return result
        return result

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if isinstance(node.op, ast.USub):
            return -value
        return +value

    def _BinOp(self, node: ast.BinOp) -> Any:
        if isinstance(node.op, ast.BitOr):
            return self._filter(node.left, node.right)
        left, right = self.eval(node.left), self.eval(node.right)
        if (
            isinstance(node.op, ast.Mult)
            and isinstance(left, str | list)
            and isinstance(right, int)
            and len(left) * right > MAX_VALUE_CHARS
        ):
            raise ExpressionError("expression result too large")
        try:
            return _BINOPS[type(node.op)](left, right)
        except (TypeError, ZeroDivisionError) as e:
            raise ExpressionError(f"cannot compute: {e}") from None

    def _Compare(self, node: ast.Compare) -> Any:
        left = self.eval(node.left)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comp)
            try:
                ok = _CMPOPS[type(op)](left, right)
            except TypeError as e:
                raise ExpressionError(f"cannot compare: {e}") from None
            if not ok:
                return False
            left = right
        return True

    def _IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def _Call(self, node: ast.Call) -> Any:
        assert isinstance(node.func, ast.Name)
        return self._apply(node.func.id, node.args, None)

    def _filter(self, value_node: ast.expr, filt: ast.expr) -> Any:
        if isinstance(filt, ast.Call):
            assert isinstance(filt.func, ast.Name)
            return self._apply(filt.func.id, filt.args, value_node)
        assert isinstance(filt, ast.Name)
        return self._apply(filt.id, [], value_node)

    def _apply(self, name: str, arg_nodes: list[ast.expr], first: ast.expr | None) -> Any:
        nodes = ([first] if first is not None else []) + list(arg_nodes)
        if name == "default":
            try:
                value = self.eval(nodes[0])
            except MissingValueError:
                value = None
            if value is None or value == "":
                return self.eval(nodes[1]) if len(nodes) > 1 else ""
            return value
        if name == "exists":
            try:
                return self.eval(nodes[0]) is not None
            except MissingValueError:
                return False
        args = [self.eval(n) for n in nodes]
        try:
            return FUNCTIONS[name](*args)
        except (TypeError, ValueError, KeyError, IndexError) as e:
            raise ExpressionError(f"{name}(): {e}") from None


def evaluate(source: str | ast.Expression, namespace: Mapping[str, Any]) -> Any:
    tree = parse(source) if isinstance(source, str) else source
    return Evaluator(namespace).eval(tree)


def evaluate_condition(source: str, namespace: Mapping[str, Any]) -> bool:
    return bool(evaluate(source, namespace))
