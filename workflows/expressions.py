"""A small, sandboxed expression language for conditions and templates.

Conditions (`'urgent' in steps.summarize.output`) and template holes
(`{{ input.lang | upper }}`) are Python-shaped expressions, parsed with `ast` and
evaluated by walking a whitelist of node types. There is no `eval`, no attribute
access to Python objects (dots read dictionary keys), no dunder names and no I/O,
so it is safe on user input and deterministic inside the workflow sandbox.

`a | f(x)` applies the filter `f` to `a` (`f(a, x)`), like Jinja.

Evaluation has a budget, because expressions are user content evaluated inside the
workflow: nesting depth is checked on parse, every value an expression builds is
measured (characters plus items, shared sub-lists counted each time they appear), an
operation whose result would be too large is refused before it runs, and the total
work of one evaluation is capped. The budget counts units of work, never time, so it
stays deterministic. Every failure inside evaluation is an `ExpressionError`, which
the workflow turns into the step's template or condition error.
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

MAX_EXPRESSION_CHARS = 4000
MAX_VALUE_CHARS = 1_000_000  # a built string or list: characters + items, nested ones counted
MAX_DEPTH = 64  # nesting of the expression's syntax tree
MAX_WORK = 4_000_000  # units (characters, items, nodes) one evaluation may touch
MAX_INT_BITS = 4096
MAX_FORMAT_WIDTH = 10_000
_FORMAT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
ROOT_NAMES = ("input", "steps", "run", "item", "branch")
CONSTANTS = {"true": True, "false": False, "null": None, "none": None}


class ExpressionError(ValueError):
    """The expression is malformed or uses something that is not allowed."""


class BudgetError(ExpressionError):
    """The expression would build too large a value or do too much work."""


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
    except (RecursionError, MemoryError, ValueError):  # ValueError: a NUL byte
        raise ExpressionError(f"expression nested too deeply or malformed: {source[:80]!r}")
    _check_depth(tree)
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


def _check_depth(tree: ast.AST) -> None:
    """Refuse trees nested deeper than MAX_DEPTH (walked without recursion)."""
    todo: list[tuple[ast.AST, int]] = [(tree, 0)]
    while todo:
        node, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression nested deeper than {MAX_DEPTH} levels")
        todo.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


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


MAX_VALUE_SIZE = 2_000_000  # deep size of a built value: characters + items + numbers


def measure(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """Characters + items in a value, a shared sub-list counted wherever it appears.

    Walks without recursion and stops as soon as the count passes `limit`, so measuring
    costs at most `limit` steps even for `[[1] * 999999] * 999999`."""
    total = 0
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, str):
            total += len(v)
        elif isinstance(v, list | tuple):
            total += len(v) + 1
            if total > limit:
                return total
            todo.extend(v)
        elif isinstance(v, Mapping):
            total += 2 * len(v) + 1
            if total > limit:
                return total
            todo.extend(v.keys())
            todo.extend(v.values())
        elif isinstance(v, int) and not isinstance(v, bool):
            total += 1 + v.bit_length() // 64
        else:
            total += 1
        if total > limit:
            return total
    return total


def _too_large(what: str = "expression result") -> BudgetError:
    return BudgetError(f"{what} too large (limit {MAX_VALUE_SIZE:,} characters and items)")


def _sum(items: Any, start: Any = 0) -> Any:
    # adding lists copies the running total each time: quadratic, so bounded
    if isinstance(start, list) and len(items) * measure(items, MAX_WORK) > MAX_WORK:
        raise BudgetError(f"sum() of lists does too much work (limit {MAX_WORK:,} units)")
    return sum(items, start)


FUNCTIONS["sum"] = _sum
# Functions whose result can be much larger than their arguments: the result's size is
# estimated (and refused when too large) before they run.
_GROWTH: dict[str, Callable[..., int]] = {
    "join": lambda items, sep=", ": measure(items) + len(items) * len(_to_str(sep)),
    "replace": lambda s, a, b: (
        len(_to_str(s)) + (_to_str(s).count(a) + (1 if a == "" else 0)) * len(str(b))
    ),
}


class Evaluator:
    """Evaluates a checked expression tree against a namespace of plain data, within the
    budget: values it builds are measured, and the work of one evaluation is counted."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.ns = namespace
        self.work = 0

    def charge(self, units: int) -> None:
        self.work += units
        if self.work > MAX_WORK:
            raise BudgetError(f"expression does too much work (limit {MAX_WORK:,} units)")

    def eval(self, node: ast.AST) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise ExpressionError(f"{type(node).__name__} is not allowed")
        self.charge(1)
        value = method(node)
        if isinstance(value, str | list) and len(value) > MAX_VALUE_CHARS:
            raise ExpressionError("expression result too large")
        if isinstance(node, _BUILDERS) and isinstance(value, list | dict):
            size = measure(value)
            if size > MAX_VALUE_SIZE:
                raise _too_large()
            self.charge(size)
        elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            raise BudgetError(f"number larger than {MAX_INT_BITS} bits")
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
            if not isinstance(base, str | list):
                raise ExpressionError(f"cannot slice a {_kind(base)}")
            try:
                return base[lower:upper:step]
            except (TypeError, ValueError) as e:
                raise ExpressionError(f"bad slice: {e}") from None
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
        out = {}
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:  # `**x`: skipped, as it always was (old runs replay the same)
                continue
            key = self.eval(k)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise ExpressionError(f"a dict key cannot be a {_kind(key)}")
            out[key] = self.eval(v)
        return out

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
        if not isinstance(value, int | float):  # bool is an int
            sign = "-" if isinstance(node.op, ast.USub) else "+"
            raise ExpressionError(f"cannot apply '{sign}' to a {_kind(value)}")
        if isinstance(node.op, ast.USub):
            return -value
        return +value

    def _BinOp(self, node: ast.BinOp) -> Any:
        if isinstance(node.op, ast.BitOr):
            return self._filter(node.left, node.right)
        left, right = self.eval(node.left), self.eval(node.right)
        self._check_binop(node.op, left, right)
        try:
            return _BINOPS[type(node.op)](left, right)
        except (TypeError, ZeroDivisionError, ValueError, OverflowError) as e:
            raise ExpressionError(f"cannot compute: {e}") from None

    def _check_binop(self, op: ast.operator, left: Any, right: Any) -> None:
        """Refuse, before computing it, a result that would break the budget."""
        if isinstance(op, ast.Mod) and isinstance(left, str):
            for m in _FORMAT_WIDTH.finditer(left):  # '%0999999999d' pads to a gigabyte
                if m.group(1) == "*" or int(m.group(1) or 0) > MAX_FORMAT_WIDTH:
                    raise BudgetError(f"'%' format width over {MAX_FORMAT_WIDTH:,}")
                if m.group(2) == "*" or int(m.group(2) or 0) > MAX_FORMAT_WIDTH:
                    raise BudgetError(f"'%' format precision over {MAX_FORMAT_WIDTH:,}")
        if isinstance(op, ast.Mult):
            seq, n = (left, right) if isinstance(left, str | list) else (right, left)
            if isinstance(seq, str | list) and isinstance(n, int):
                if len(seq) * n > MAX_VALUE_CHARS:
                    raise ExpressionError("expression result too large")
                if isinstance(seq, list) and n > 0 and measure(seq) * n > MAX_VALUE_SIZE:
                    raise _too_large()
            elif (
                isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() + right.bit_length() > MAX_INT_BITS
            ):
                raise BudgetError(f"number larger than {MAX_INT_BITS} bits")
        if (
            isinstance(op, ast.Add)
            and isinstance(left, str | list)
            and isinstance(right, str | list)
            and len(left) + len(right) > MAX_VALUE_CHARS
        ):
            raise ExpressionError("expression result too large")

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
        for a in args:  # every function is at most linear in its arguments' size ...
            self.charge(measure(a, MAX_WORK))
        try:
            grow = _GROWTH.get(name)  # ... except these, whose result is estimated first
            if grow is not None and grow(*args) > MAX_VALUE_SIZE:
                raise _too_large(f"result of {name}()")
            return FUNCTIONS[name](*args)
        except ExpressionError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, ArithmeticError, AttributeError) as e:
            raise ExpressionError(f"{name}(): {e}") from None
        except RecursionError:
            raise ExpressionError(f"{name}(): value nested too deeply") from None


_BUILDERS = (ast.BinOp, ast.Call, ast.List, ast.Tuple, ast.Dict)  # nodes that build values


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "number",
        float: "number",
        str: "string",
        list: "list",
        dict: "object",
    }.get(type(value), type(value).__name__)


def evaluate(source: str | ast.Expression, namespace: Mapping[str, Any]) -> Any:
    """Evaluate within the budget; any failure is an ExpressionError (never another type,
    which inside the workflow would fail the workflow task instead of the step)."""
    tree = parse(source) if isinstance(source, str) else source
    try:
        return Evaluator(namespace).eval(tree)
    except ExpressionError:
        raise
    except RecursionError:
        raise ExpressionError("expression or value nested too deeply") from None
    except MemoryError:
        raise _too_large() from None
    except Exception as e:  # a case the evaluator does not name yet: still the step's error
        raise ExpressionError(f"cannot evaluate: {type(e).__name__}: {e}") from None


def evaluate_condition(source: str, namespace: Mapping[str, Any]) -> bool:
    return bool(evaluate(source, namespace))
