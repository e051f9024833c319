"""`/v1/schedules` and `/v1/scheduling`: duratask jobs on Temporal Schedules.

Thin HTTP layer over `ScheduleService` (shared with the CLI's sync and the model's
scheduling tools); its `ScheduleError`s become 404/409/422 in api/errors.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from api.deps import Admin, PrincipalDep, Reader, SettingsDep, StoreDep, TemporalDep, Writer
from api.errors import COMMON, TEMPORAL, responses
from duratask.schedules.models import (
    BackfillRequest,
    PauseRequest,
    ScheduleCreate,
    ScheduleUpdate,
    ScheduleView,
    SchedulingSwitch,
    TriggerRequest,
)
from duratask.schedules.service import ScheduleService

router = APIRouter(tags=["schedules"], responses=responses(*COMMON, 404, 409, *TEMPORAL))


def schedule_service(
    client: TemporalDep, store: StoreDep, settings: SettingsDep, who: PrincipalDep
) -> ScheduleService:
    return ScheduleService(client, store, settings, who)


Schedules = Annotated[ScheduleService, Depends(schedule_service)]


@router.post("/v1/schedules", status_code=status.HTTP_201_CREATED)
async def create_schedule(
    body: ScheduleCreate, svc: Schedules, who: Writer, source: str = "api"
) -> ScheduleView:
    """Create a schedule: one of `cron`, `every`, `text` or `at`. It is owned by the
    caller (another `owner` needs `tasks:admin`) and shared with `team` if given."""
    return await svc.create(body, who.identity, "sync" if source == "sync" else "api")


@router.get("/v1/schedules")
async def list_schedules(
    svc: Schedules,
    _: Reader,
    owner: str | None = None,
    status: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    items = await svc.list(owner=owner, status=status)
    if source:
        items = [v for v in items if v.source == source]
    return {"items": items, "scheduling_enabled": await svc.enabled()}


@router.get("/v1/schedules/{schedule_id}")
async def get_schedule(schedule_id: str, svc: Schedules, _: Reader) -> ScheduleView:
    return await svc.get(schedule_id)


@router.patch("/v1/schedules/{schedule_id}")
async def update_schedule(
    schedule_id: str, body: ScheduleUpdate, svc: Schedules, who: Writer
) -> ScheduleView:
    return await svc.update(schedule_id, body, who.identity)


@router.delete("/v1/schedules/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_schedule(schedule_id: str, svc: Schedules, _: Writer) -> Response:
    await svc.delete(schedule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/v1/schedules/{schedule_id}/pause")
async def pause_schedule(
    schedule_id: str, svc: Schedules, _: Writer, body: PauseRequest | None = None
) -> ScheduleView:
    return await svc.pause(schedule_id, body.note if body else None)


@router.post("/v1/schedules/{schedule_id}/unpause")
async def unpause_schedule(
    schedule_id: str, svc: Schedules, _: Writer, body: PauseRequest | None = None
) -> ScheduleView:
    return await svc.unpause(schedule_id, body.note if body else None)


@router.post("/v1/schedules/{schedule_id}/trigger", status_code=status.HTTP_202_ACCEPTED)
async def trigger_schedule(
    schedule_id: str, svc: Schedules, _: Writer, body: TriggerRequest | None = None
) -> dict[str, Any]:
    """Run now (by default even if a run is still going)."""
    await svc.trigger(schedule_id, body.overlap if body else "allow_all")
    return {"id": schedule_id, "triggered": True}


@router.post("/v1/schedules/{schedule_id}/backfill", status_code=status.HTTP_202_ACCEPTED)
async def backfill_schedule(
    schedule_id: str, body: BackfillRequest, svc: Schedules, _: Writer
) -> dict[str, Any]:
    """Run every firing the spec had between `start_at` and `end_at`."""
    await svc.backfill(schedule_id, body.start_at, body.end_at, body.overlap)
    return {"id": schedule_id, "backfill": [body.start_at, body.end_at]}


@router.get("/v1/scheduling")
async def get_scheduling(svc: Schedules, _: Reader) -> dict[str, Any]:
    return {"enabled": await svc.enabled()}


@router.put("/v1/scheduling")
async def set_scheduling(body: SchedulingSwitch, svc: Schedules, _: Admin) -> dict[str, Any]:
    """Off pauses every duratask schedule; on resumes the ones the switch paused
    (everyone's: it needs `tasks:admin`)."""
    return await svc.set_enabled(body.enabled)
