"""The built-in tools: `http_request`, `notify`, and the scheduling tools.

`plan` is the model's checklist: in an agent loop the workflow handles it itself
(no activity), so the run state shows the plan as it progresses. The scheduling tools (`schedule_task`, `list_tasks`, `cancel_task`) live in
`activities.tools.scheduling`, over the same schedule service as the gateway.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from activities.notify import deliver
from activities.tools.http import HttpRequestArgs, http_request
from activities.tools.registry import ToolContext, ToolRegistry
from activities.tools.scheduling import (
    CancelTaskArgs,
    ListTasksArgs,
    ScheduleTaskArgs,
    cancel_task,
    list_tasks,
    schedule_task,
)


class NotifyArgs(BaseModel):
    message: str
    channel: str | None = None


class PlanArgs(BaseModel):
    items: list[str] | None = Field(
        default=None, description="The numbered steps of your plan, in order (replaces it)"
    )
    done: list[int] = Field(default_factory=list, description="Numbers of steps now completed")


async def notify_tool(args: NotifyArgs, ctx: ToolContext) -> dict[str, Any]:
    delivered = await deliver(
        ctx.settings, ctx.run_id, ctx.step_id, args.message, args.channel, {}, ctx.idempotency_key
    )
    return {"delivered": delivered}


async def plan_tool(args: PlanArgs, ctx: ToolContext) -> dict[str, Any]:
    """Only reached from a `tool_call` step: in an agent loop the workflow keeps the plan."""
    return args.model_dump()


def register(registry: ToolRegistry) -> None:
    registry.tool(
        "plan",
        "Write your plan as numbered steps (items) and mark steps done by number (done). "
        "The operator sees it as a checklist.",
        PlanArgs,
    )(plan_tool)
    registry.tool(
        "http_request",
        "Make an HTTP request to a public URL and return status, headers and body.",
        HttpRequestArgs,
        side_effects=True,
    )(http_request)
    registry.tool("notify", "Send a notification message to the run's channels.", NotifyArgs, True)(
        notify_tool
    )
    registry.tool(
        "schedule_task",
        "Schedule a one-time (execute_at) or recurring (cron) task.",
        ScheduleTaskArgs,
        side_effects=True,
    )(schedule_task)
    registry.tool("list_tasks", "List scheduled tasks, optionally by status.", ListTasksArgs)(
        list_tasks
    )
    registry.tool("cancel_task", "Cancel a scheduled task by id.", CancelTaskArgs, True)(
        cancel_task
    )
