"""The Temporal Schedule that runs the definition health check (`HealthCheckWorkflow`).

One schedule per namespace and task queue, created (or brought to the current
interval) when a worker starts; `DURATASK_HEALTH_CHECK_EVERY=""` removes it. A firing
is skipped while the previous check still runs.
"""

from __future__ import annotations

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from duratask.logging import get_logger
from duratask.settings import Settings
from workflows.durations import parse_duration
from workflows.health_check import HealthCheckInput, HealthCheckWorkflow

log = get_logger(__name__)


def schedule_id(settings: Settings) -> str:
    return f"duratask-health-check-{settings.task_queue}"


def health_schedule(settings: Settings) -> Schedule:
    every = parse_duration(settings.health_check_every)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            HealthCheckWorkflow.run,
            HealthCheckInput(),
            id=schedule_id(settings),
            task_queue=settings.task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_health_schedule(client: Client, settings: Settings) -> str | None:
    """Create or update the schedule; remove it when the check is off. Its id, or None."""
    sid = schedule_id(settings)
    handle = client.get_schedule_handle(sid)
    if not settings.health_check_every:
        try:
            await handle.delete()
            log.info("health check schedule removed", schedule_id=sid)
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
        return None
    schedule = health_schedule(settings)
    try:
        await client.create_schedule(sid, schedule)
        log.info("health check schedule created", schedule_id=sid,
                 every=settings.health_check_every)  # fmt: skip
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
    return sid
