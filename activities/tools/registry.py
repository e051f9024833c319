"""The tool registry: each tool a typed async function with a JSON schema.

A tool's arguments are one pydantic model, so the model sees its JSON schema and a
bad call is rejected with the validation message fed back to the model. Tools that
change the world declare `side_effects=True` and receive `ctx.idempotency_key`,
which stays the same across retries of the same call.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from duratask.settings import Settings


@dataclass
class ToolContext:
    run_id: str
    step_id: str
    idempotency_key: str
    owner: str | None
    settings: Settings
    services: dict[str, Any] = field(default_factory=dict)


class ToolError(Exception):
    """A tool failed in a way the model should hear about (not retried)."""


ToolFn = Callable[[Any, ToolContext], Awaitable[Any]]


@dataclass
class Tool:
    name: str
    description: str
    args_model: type[BaseModel]
    fn: ToolFn
    side_effects: bool = False

    def schema(self) -> dict[str, Any]:
        params = self.args_model.model_json_schema()
        params.pop("title", None)
        return {"name": self.name, "description": self.description, "parameters": params}


class ToolRegistry:
    def __init__(self) -> None:
        self.tools: dict[str, Tool] = {}

    def add(self, tool: Tool) -> None:
        self.tools[tool.name] = tool

    def tool(
        self, name: str, description: str, args: type[BaseModel], side_effects: bool = False
    ) -> Callable[[ToolFn], ToolFn]:
        def deco(fn: ToolFn) -> ToolFn:
            self.add(Tool(name, description, args, fn, side_effects))
            return fn

        return deco

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def names(self) -> set[str]:
        return set(self.tools)

    def schemas(self, names: list[str]) -> list[dict[str, Any]]:
        return [self.tools[n].schema() for n in names if n in self.tools]

    def load_module(self, module_name: str) -> None:
        """Import a user module; it registers tools via `register(registry)` or `TOOLS`."""
        module = importlib.import_module(module_name)
        register = getattr(module, "register", None)
        if callable(register):
            register(self)
        for tool in getattr(module, "TOOLS", []):
            self.add(tool)


def build_registry(settings: Settings) -> ToolRegistry:
    from activities.tools import builtins

    registry = ToolRegistry()
    builtins.register(registry)
    for name in settings.tool_modules:
        registry.load_module(name)
    return registry
