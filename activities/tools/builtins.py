"""The built-in tools: `http_request`, `notify`, and the scheduling tools.

`plan` is the model's checklist: in an agent loop the workflow handles it itself
(no activity), so the run state shows the plan as it progresses. The scheduling tools (`schedule_task`, `list_tasks`, `cancel_task`) call the same
schedule service as the gateway, reached through `ctx.services["schedules"]`; where
no such service is wired into the worker they say scheduling is unavailable.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from activities.notify import deliver
from activities.tools.http import HttpRequestArgs, http_request
from activities.tools.registry import ToolContext, ToolError, ToolRegistry


class NotifyArgs(BaseModel):
    message: str
    channel: str | None = None


class ScheduleTaskArgs(BaseModel):
    description: str
    prompt: str | None = Field(default=None, description="What the scheduled run should do")
    definition_id: str | None = Field(default=None, description="Or: a task definition to run")
    execute_at: str | None = Field(default=None, description="ISO 8601 time for a one-time run")
    cron: str | None = Field(default=None, description="5-field cron for a recurring run")
    input: dict[str, Any] = Field(default_factory=dict)


class PlanArgs(BaseModel):
    items: list[str] | None = Field(
        default=None, description="The numbered steps of your plan, in order (replaces it)"
    )
    done: list[int] = Field(default_factory=list, description="Numbers of steps now completed")


class ListTasksArgs(BaseModel):
    status: Literal["PENDING", "COMPLETED", "PAUSED"] | None = None


class CancelTaskArgs(BaseModel):
    id: str


async def notify_tool(args: NotifyArgs, ctx: ToolContext) -> dict[str, Any]:
    delivered = await deliver(
        ctx.settings, ctx.run_id, ctx.step_id, args.message, args.channel, {}, ctx.idempotency_key
    )
    return {"delivered": delivered}


def _scheduler(ctx: ToolContext) -> Any:
    service = ctx.services.get("schedules")
    if service is None:
        raise ToolError("scheduling unavailable: this worker has no schedule service configured")
    return service


async def schedule_task(args: ScheduleTaskArgs, ctx: ToolContext) -> Any:
    if not args.execute_at and not args.cron:
        raise ToolError("schedule_task needs at least one of 'execute_at' or 'cron'")
    if not args.prompt and not args.definition_id:
        raise ToolError("schedule_task needs a 'prompt' or a 'definition_id'")
    return await _scheduler(ctx).tool_schedule(args, ctx)


async def list_tasks(args: ListTasksArgs, ctx: ToolContext) -> Any:
    return await _scheduler(ctx).tool_list(args, ctx)


async def cancel_task(args: CancelTaskArgs, ctx: ToolContext) -> Any:
    return await _scheduler(ctx).tool_cancel(args, ctx)


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
