"""The stream's event types are one enum, documented, and what the workflow emits."""

from __future__ import annotations

import ast
from pathlib import Path

from workflows.events import TERMINAL, EventType

ROOT = Path(__file__).resolve().parents[2]


def test_every_event_type_is_documented() -> None:
    doc = (ROOT / "docs" / "events.md").read_text()
    missing = [t.value for t in EventType if f"`{t.value}`" not in doc]
    assert not missing, f"docs/events.md does not describe {missing}"


def test_every_emit_names_a_member_of_the_enum() -> None:
    """No emitter passes a bare string: a new type must be added to EventType first."""
    bare: list[str] = []
    for path in (ROOT / "workflows").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "emit"
                and node.args
            ):
                first = node.args[0]
                named = (
                    isinstance(first, ast.Attribute)
                    and isinstance(first.value, ast.Name)
                    and first.value.id == "EventType"
                )
                if not named:
                    bare.append(f"{path.name}:{node.lineno}")
    assert not bare, f"emit() without an EventType member at {bare}"


def test_members_equal_their_wire_strings() -> None:
    assert EventType.RUN_COMPLETED == "run.completed"
    assert "run.failed" in TERMINAL and "step.failed" not in TERMINAL
    assert len({t.value for t in EventType}) == len(EventType)
