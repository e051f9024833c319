"""Request bodies parsed within limits, before any heavy work.

A definition arrives as JSON or YAML from anyone holding a read token (`validate`), so
each costly step has a bound checked before it runs: the body's size, YAML aliases
(an alias bomb of a few hundred bytes expands to millions of nodes: the expanded size
is counted on the composed node graph, where aliases are still shared, and recursive
aliases are refused), the document's nesting depth, the number of steps and the length
of each template. Parsing and validation then run in a worker thread, so a large but
legal definition never holds up the event loop (`/healthz` keeps answering).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from anyio import to_thread

from api.errors import ApiError, unprocessable
from duratask.settings import Settings

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
# Fields of a step (and of an approval's prompt) that are templates.
TEMPLATE_FIELDS = ("prompt", "system", "message", "condition", "until")

T = TypeVar("T")


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run CPU-bound work (parsing, validation) in a worker thread."""
    return await to_thread.run_sync(fn, *args)


def too_large(what: str, limit: int, unit: str = "bytes") -> ApiError:
    return ApiError(413, f"{what} is larger than the limit of {limit:,} {unit}")


def parse_document(raw: bytes, content_type: str, settings: Settings) -> Any:
    """JSON or YAML to plain data; 413/422 naming the limit or the syntax error."""
    if len(raw) > settings.max_definition_bytes:
        raise too_large("the definition", settings.max_definition_bytes)
    is_yaml = content_type in YAML_TYPES
    try:
        if is_yaml:
            data = load_yaml(
                raw,
                settings.max_yaml_nodes,
                settings.max_definition_depth,
                settings.max_definition_bytes,
            )
        else:
            data = json.loads(raw)
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise unprocessable(f"the body is not valid {'YAML' if is_yaml else 'JSON'}: {e}") from None
    except RecursionError:
        raise unprocessable(
            f"the body is nested deeper than {settings.max_definition_depth} levels"
        ) from None
    check_depth(data, settings.max_definition_depth)
    return data


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader; aliases are checked before anything is constructed."""


def load_yaml(
    raw: bytes | str, max_nodes: int, max_depth: int = 32, max_chars: int = 1_048_576
) -> Any:
    if _flow_depth(raw if isinstance(raw, bytes) else raw.encode()) > max_depth:
        # PyYAML's scanner is quadratic in open flow levels: refuse before it runs
        raise unprocessable(f"the body is nested deeper than {max_depth} levels")
    loader = _Loader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, max_nodes, max_chars)
        return loader.construct_document(node)
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]


def _flow_depth(raw: bytes) -> int:
    """The deepest run of unclosed `[`/`{`, counted everywhere (quotes included, so no
    quoting trick hides one): an upper bound of the document's flow nesting."""
    depth = deepest = 0
    for m in _BRACKETS.finditer(raw):
        if m.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif depth:
            depth -= 1
    return deepest


_BRACKETS = re.compile(rb"[\[\]{}]")


def _check_expansion(root: yaml.Node, max_nodes: int, max_chars: int) -> None:
    """Count the nodes and scalar characters the document has once every alias is
    expanded (memoised per shared node, so counting is linear in the composed graph);
    refuse cycles."""
    sizes: dict[int, tuple[int, int]] = {}
    on_path: set[int] = set()
    todo: list[tuple[yaml.Node, bool]] = [(root, False)]
    while todo:
        node, done = todo.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            nodes = 1 + sum(sizes[id(c)][0] for c in children)
            chars = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            chars += sum(sizes[id(c)][1] for c in children)
            if nodes > max_nodes:
                raise unprocessable(
                    f"the YAML expands to more than {max_nodes:,} nodes (aliases included)"
                )
            if chars > max_chars:
                raise unprocessable(
                    f"the YAML expands to more than {max_chars:,} characters (aliases included)"
                )
            sizes[key] = (nodes, chars)
            continue
        if key in sizes:
            continue
        on_path.add(key)
        todo.append((node, True))
        for c in children:
            if id(c) in on_path:
                raise unprocessable("the YAML has a recursive alias")
            if id(c) not in sizes:
                todo.append((c, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_depth(data: Any, max_depth: int) -> None:
    """Refuse documents nested deeper than `max_depth` (walked without recursion)."""
    todo: list[tuple[Any, int]] = [(data, 1)]
    while todo:
        value, depth = todo.pop()
        if depth > max_depth:
            raise unprocessable(f"the body is nested deeper than {max_depth} levels")
        if isinstance(value, dict):
            todo.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            todo.extend((v, depth + 1) for v in value)


def check_definition_limits(data: dict[str, Any], settings: Settings) -> None:
    """Count steps (inline branch steps included) and measure templates before the
    definition is validated; 422 naming the limit."""
    steps = 0
    todo = [data.get("steps")]
    while todo:
        items = todo.pop()
        if not isinstance(items, list):
            continue
        steps += len(items)
        if steps > settings.max_definition_steps:
            raise unprocessable(
                f"the definition has more than {settings.max_definition_steps:,} steps"
            )
        for step in items:
            if not isinstance(step, dict):
                continue
            for name in TEMPLATE_FIELDS:
                text = step.get(name)
                if isinstance(text, str) and len(text) > settings.max_template_chars:
                    raise unprocessable(
                        f"step '{step.get('id')}': {name} is longer than the limit of "
                        f"{settings.max_template_chars:,} characters"
                    )
            for branch in step.get("branches") or []:
                if isinstance(branch, dict):
                    todo.append(branch.get("steps"))
