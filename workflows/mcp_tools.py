"""Names of MCP tools in a definition, and which calls a `tools` list allows.

A definition allows an MCP server's tools as `mcp:<server>/<tool>` or all of them as
`mcp:<server>/*`. Models only accept tool names of `[a-zA-Z0-9_-]{1,64}`, so the model
sees `mcp__<server>__<tool>` and the workflow maps its calls back through the tool
list pinned in the run. Pure functions: used by the workflow, the worker and the gateway.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PREFIX = "mcp:"
_NAME = re.compile(r"^mcp:([A-Za-z0-9_-]{1,64})/(\*|[^\s/*][^\s]{0,127})$")
_MODEL_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class McpToolSpec(BaseModel):
    """One MCP tool as pinned in a run: what the model is offered, and how to call it."""

    model_config = ConfigDict(extra="ignore")
    name: str  # mcp:<server>/<tool>
    model_name: str  # what the model calls it
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)

    @property
    def server(self) -> str:
        return split(self.name)[0]  # type: ignore[index]

    @property
    def tool(self) -> str:
        return split(self.name)[1]  # type: ignore[index]

    def tool_schema(self) -> dict[str, Any]:
        """The same shape as a built-in tool's schema (`ToolRegistry.schemas`)."""
        params = self.parameters or {"type": "object", "properties": {}}
        return {"name": self.model_name, "description": self.description, "parameters": params}


def is_mcp(name: str) -> bool:
    return name.startswith(PREFIX)


def split(name: str) -> tuple[str, str] | None:
    """`mcp:docs/search` -> (`docs`, `search`); `mcp:docs/*` -> (`docs`, `*`); else None."""
    m = _NAME.match(name)
    return (m.group(1), m.group(2)) if m else None


def servers(allowed: list[str]) -> list[str]:
    """The MCP servers an allow-list names, in a stable order."""
    return sorted({p[0] for p in (split(n) for n in allowed if is_mcp(n)) if p})


def tool_allowed(name: str, allowed: list[str]) -> bool:
    """Exact names, plus `mcp:<server>/*` for every tool of that server."""
    if name in allowed:
        return True
    parts = split(name)
    return parts is not None and f"{PREFIX}{parts[0]}/*" in allowed


def model_name(server: str, tool: str) -> str:
    name = _MODEL_UNSAFE.sub("_", f"mcp__{server}__{tool}")
    return name[:64]


def spec(server: str, tool: str, description: str, parameters: dict[str, Any]) -> McpToolSpec:
    return McpToolSpec(
        name=f"{PREFIX}{server}/{tool}",
        model_name=model_name(server, tool),
        description=description,
        parameters=parameters,
    )
