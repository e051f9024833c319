"""The model's scheduling tools: `schedule_task`, `list_tasks`, `cancel_task`.

An adapter over the same schedule service the gateway uses (reached through
`ctx.services["schedules"]`), shaped as the seed's task tools: a run scheduled by a
model is owned by that run's owner, and its schedule id derives from the call's
idempotency key, so a retried call finds what the first attempt created.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from activities.tools.registry import ToolContext, ToolError

if TYPE_CHECKING:
    from duratask.schedules.models import ScheduleView
    from duratask.schedules.service import ScheduleService


class ScheduleTaskArgs(BaseModel):
    description: str
    prompt: str | None = Field(default=None, description="What the scheduled run should do")
    definition_id: str | None = Field(default=None, description="Or: a task definition to run")
    execute_at: str | None = Field(default=None, description="ISO 8601 time for a one-time run")
    cron: str | None = Field(default=None, description="5-field cron for a recurring run")
    input: dict[str, Any] = Field(default_factory=dict)


class ListTasksArgs(BaseModel):
    status: Literal["PENDING", "COMPLETED", "PAUSED"] | None = None


class CancelTaskArgs(BaseModel):
    id: str


async def _scheduler(ctx: ToolContext) -> ScheduleService:
    from duratask.schedules.service import ScheduleError

    service = ctx.services.get("schedules")
    if service is None:
        raise ToolError("scheduling unavailable: this worker has no schedule service configured")
    try:
        await service.require_enabled()
    except ScheduleError as e:
        raise ToolError(e.message) from None
    return service  # type: ignore[no-any-return]


async def schedule_task(args: ScheduleTaskArgs, ctx: ToolContext) -> dict[str, Any]:
    from duratask.schedules.ids import slugify
    from duratask.schedules.models import ScheduleConfig
    from duratask.schedules.service import ScheduleError, adhoc_definition

    if not args.execute_at and not args.cron:
        raise ToolError("schedule_task needs at least one of 'execute_at' or 'cron'")
    if not args.prompt and not args.definition_id:
        raise ToolError("schedule_task needs a 'prompt' or a 'definition_id'")
    service = await _scheduler(ctx)
    by = f"run:{ctx.run_id}"
    definition_id = args.definition_id
    if not definition_id:
        definition = adhoc_definition(args.prompt or "", name=args.description)
        await service.store.put(definition, created_by=by)
        definition_id = definition.id
    key = hashlib.sha256(ctx.idempotency_key.encode()).hexdigest()[:8]
    sid = f"sched-{slugify(args.description, 32)}-{key}"
    cfg = ScheduleConfig(
        definition_id=definition_id,
        input=args.input,
        owner=ctx.owner,
        description=args.description,
        cron=args.cron,
        at=None if args.cron else args.execute_at,
        start_at=_parse_time(args.execute_at) if args.cron and args.execute_at else None,
    )
    try:
        view = await service.create_once(sid, cfg, by, "tool")
    except ScheduleError as e:
        raise ToolError(e.message) from None
    return _task(view)


async def list_tasks(args: ListTasksArgs, ctx: ToolContext) -> dict[str, Any]:
    service = await _scheduler(ctx)
    tasks = [_task(v) for v in await service.list() if v.owner == ctx.owner]
    if args.status:
        tasks = [t for t in tasks if t["status"] == args.status]
    return {"tasks": tasks}


async def cancel_task(args: CancelTaskArgs, ctx: ToolContext) -> dict[str, Any]:
    service = await _scheduler(ctx)
    if not await service.owned_by(args.id, ctx.owner):
        raise ToolError(f"no scheduled task with id '{args.id}'")
    await service.delete(args.id)
    return {"id": args.id, "cancelled": True}


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ToolError(f"execute_at {value!r} is not an ISO 8601 time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _task(view: ScheduleView) -> dict[str, Any]:
    """A schedule as the model sees it (the seed's task shape)."""
    status = {"active": "PENDING", "paused": "PAUSED", "completed": "COMPLETED"}[view.status]
    nxt = view.next_fire_times[0].isoformat() if view.next_fire_times else None
    return {
        "id": view.id,
        "description": view.description,
        "status": status,
        "schedule": view.human,
        "cron": view.spec.get("cron"),
        "next_run_at": nxt,
        "last_result": view.last_result,
    }
