"""The periodic definition health check: one activity, started by a Temporal Schedule.

Health used to be computed only when someone read it, so a definition nobody looked at
could regress unseen. A Temporal Schedule (`duratask.health_schedule`) starts this
workflow every `DURATASK_HEALTH_CHECK_EVERY`; its activity checks every definition,
stores each verdict and alerts on a turn to `regression` (once per transition: the
store decides). Deterministic: the workflow only runs the activity.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

HEALTH_CHECK_ACTIVITY = "duratask.health.check_all"
HEALTH_CHECK_WORKFLOW = "DurataskHealthCheck"


class HealthCheckInput(BaseModel):
    max_definitions: int | None = Field(default=None, ge=1)  # default: the settings' cap


class HealthCheckResult(BaseModel):
    checked: int = 0
    not_healthy: dict[str, str] = Field(default_factory=dict)  # definition -> verdict
    alerted: list[str] = Field(default_factory=list)  # turned to regression with this check


@workflow.defn(name=HEALTH_CHECK_WORKFLOW)
class HealthCheckWorkflow:
    @workflow.run
    async def run(self, inp: HealthCheckInput) -> HealthCheckResult:
        return await workflow.execute_activity(
            HEALTH_CHECK_ACTIVITY,
            inp,
            result_type=HealthCheckResult,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="check every definition's health and store the verdicts",
        )
