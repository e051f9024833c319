"""The pure parts of budgets and input steps: limits reached, schema problems named by
field, defaults filled, and the definition's checks of both."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from workflows.budget import _reached
from workflows.definition import TaskDefinition
from workflows.human_input import problems, with_defaults
from workflows.models import Usage

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "count": {"type": "integer", "minimum": 1, "default": 3},
        "address": {"type": "object", "properties": {"city": {"type": "string"}},
                    "required": ["city"]},
    },
    "required": ["name"],
}  # fmt: skip


def test_limits_reached_at_the_limit_not_before() -> None:
    u = Usage(input_tokens=6, output_tokens=4, cost_usd=0.5)
    assert _reached(u, 11, None) is None
    assert _reached(u, 10, None) == "10 tokens used, limit 10"
    assert _reached(u, None, 0.6) is None
    assert "limit $0.5" in (_reached(u, None, 0.5) or "")
    assert _reached(u, None, None) is None


def test_problems_name_each_field() -> None:
    found = problems(SCHEMA, {"count": 0, "tags": ["a", 2], "address": {}})
    fields = {p["field"] for p in found}
    assert fields == {"name", "count", "tags.1", "address.city"}
    assert problems(SCHEMA, {"name": "x"}) == []
    assert problems(SCHEMA, "x")[0]["field"] == "value"


def test_defaults_fill_missing_top_level_properties_only() -> None:
    assert with_defaults(SCHEMA, {"name": "x"}) == {"name": "x", "count": 3}
    assert with_defaults(SCHEMA, {"name": "x", "count": 5}) == {"name": "x", "count": 5}
    assert with_defaults(SCHEMA, "text") == "text"


def test_definition_checks_input_schema_and_limits() -> None:
    ok = TaskDefinition.model_validate({
        "id": "f", "limits": {"max_cost_usd": 1, "on_budget": "approve"},
        "steps": [{"id": "ask", "action": "input", "schema": SCHEMA},
                  {"id": "go", "action": "llm_call", "prompt": "x", "limits": {"max_tokens": 9}}],
    })  # fmt: skip
    assert ok.limits.on_budget == "approve"
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        TaskDefinition.model_validate(
            {"id": "f", "steps": [{"id": "ask", "action": "input", "schema": {"type": 5}}]}
        )
    with pytest.raises(ValidationError):
        TaskDefinition.model_validate({"id": "f", "limits": {"max_cost_usd": -1},
                                       "steps": [{"id": "a", "action": "llm_call", "prompt": "x"}]})  # fmt: skip
