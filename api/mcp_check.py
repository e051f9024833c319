"""The save-time check of a definition's MCP tools: the server must be configured,
and the tool offered by it when the server can be listed.

Listing runs the server's own protocol (a stdio subprocess or an HTTP session), so
it is bounded by `mcp_list_timeout_s` and never blocks the event loop; a server that
cannot be listed right now does not block the save (the run lists it again when it
starts, and fails the step then if the tool is still missing).
"""

from __future__ import annotations

import asyncio

from activities.tools.mcp import list_server_tools
from duratask.logging import get_logger
from duratask.settings import Settings
from workflows.definition import ParallelStep, Step, TaskDefinition, ToolCallStep
from workflows.mcp_tools import is_mcp, split
from workflows.validation import Problem

log = get_logger(__name__)


def _names(definition: TaskDefinition) -> list[str]:
    names = [t for t in definition.tools if is_mcp(t)]
    todo: list[Step] = list(definition.steps)
    while todo:  # tool_call steps, inline parallel branches included
        step = todo.pop(0)
        if isinstance(step, ToolCallStep) and is_mcp(step.tool):
            names.append(step.tool)
        if isinstance(step, ParallelStep):
            todo += [s for b in step.branches for s in b.steps or []]
    return list(dict.fromkeys(names))


async def mcp_problems(settings: Settings, definition: TaskDefinition) -> list[Problem]:
    wanted: dict[str, set[str]] = {}
    for name in _names(definition):
        parts = split(name)
        if parts is not None:
            wanted.setdefault(parts[0], set()).add(parts[1])
    problems: list[Problem] = []
    for server in sorted(wanted):
        if server not in settings.mcp_servers:
            known = ", ".join(sorted(settings.mcp_servers)) or "none configured"
            problems.append(
                Problem(f"unknown MCP server '{server}' (known: {known})", None, "tools")
            )
            continue
        tools = wanted[server] - {"*"}
        if not tools:
            continue
        offered = await _offered(settings, server)
        if offered is None:
            continue
        for tool in sorted(tools - offered):
            listed = ", ".join(sorted(offered)) or "none"
            problems.append(
                Problem(
                    f"MCP server '{server}' offers no tool '{tool}' (it offers: {listed})",
                    None,
                    "tools",
                )
            )
    return problems


async def _offered(settings: Settings, server: str) -> set[str] | None:
    try:
        specs = await asyncio.wait_for(
            list_server_tools(settings, server), settings.mcp_list_timeout_s
        )
    except Exception as e:  # unreachable now: the run checks again when it lists
        log.warning("MCP server not listable at save", server=server, error=type(e).__name__)
        return None
    return {s.tool for s in specs}
