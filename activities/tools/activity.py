"""The tool activity: one tool call, validated against the tool's schema.

The workflow already refuses tools a definition does not allow; this checks again
(defence in depth) and validates arguments. A tool's own failure (`ToolError`, bad
arguments) is returned to the model as an error result, not retried; anything else
(a crash, a timeout) is raised so Temporal retries it with the same idempotency key.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from temporalio import activity

from activities.support import heartbeating, truncate_value
from activities.tools.mcp import run_mcp_tool
from activities.tools.registry import ToolContext, ToolError, ToolRegistry
from duratask.logging import get_logger
from duratask.settings import Settings
from workflows import contracts
from workflows.mcp_tools import is_mcp, tool_allowed
from workflows.models import ToolRequest, ToolResult

log = get_logger(__name__)


class ToolActivities:
    def __init__(
        self, settings: Settings, registry: ToolRegistry, services: dict[str, Any] | None = None
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.services = services or {}

    @activity.defn(name=contracts.TOOL_ACTIVITY)
    async def call(self, req: ToolRequest) -> ToolResult:
        tool = self.registry.get(req.tool)
        if not tool_allowed(req.tool, req.allowed):
            return ToolResult(error=f"tool '{req.tool}' is not allowed in this task")
        if is_mcp(req.tool):
            return await self._mcp(req)
        if tool is None:
            return ToolResult(error=f"unknown tool '{req.tool}'")
        try:
            args = tool.args_model.model_validate(req.args)
        except ValidationError as e:
            return ToolResult(
                error=f"invalid arguments for {req.tool}: {e.errors(include_url=False)}"
            )
        ctx = self._context(req)
        log.info("tool call", run_id=req.run_id, step_id=req.step_id, tool=req.tool,
                 attempt=activity.info().attempt)  # fmt: skip
        try:
            async with heartbeating(tool=req.tool):
                output = await tool.fn(args, ctx)
        except ToolError as e:
            return ToolResult(error=str(e))
        value, truncated = truncate_value(output, req.max_output_bytes)
        return ToolResult(output=value, truncated=truncated)

    def _context(self, req: ToolRequest) -> ToolContext:
        return ToolContext(
            run_id=req.run_id,
            step_id=req.step_id,
            idempotency_key=req.idempotency_key,
            owner=req.owner,
            settings=self.settings,
            services=self.services,
        )

    async def _mcp(self, req: ToolRequest) -> ToolResult:
        """An MCP tool: the server validates the arguments; its session lives as long
        as this attempt (a cancelled activity closes it)."""
        log.info("mcp tool call", run_id=req.run_id, step_id=req.step_id, tool=req.tool,
                 attempt=activity.info().attempt)  # fmt: skip
        try:
            async with heartbeating(tool=req.tool):
                output = await run_mcp_tool(self.settings, req.tool, req.args, self._context(req))
        except ToolError as e:
            return ToolResult(error=str(e))
        value, truncated = truncate_value(output, req.max_output_bytes)
        return ToolResult(output=value, truncated=truncated)
