"""Tell the workflow which activity attempt it is hearing from, and why one ended.

A step's retry policy is for failures of the work (a tool's 500, a model's 429), not for
the worker that ran it going away. Temporal cannot tell the two apart by itself: a
worker shutting down fails the attempt with `WorkerShutdown`, a killed worker with a
heartbeat timeout, and both use up `maximum_attempts`. So the workflow marks both as
non-retryable and reschedules the call itself without counting them (workflows/
retries.py); to keep its own count exact it needs each attempt's number, which only
the worker knows. This interceptor supplies it, for every activity alike:

- a result model with an `attempt` field gets the attempt that produced it;
- an attempt cancelled because this worker shuts down fails as `WorkerShutdown`
  carrying `{"attempt": n}` (instead of the SDK's detail-less cancel report);
- every heartbeat carries `{"attempt": n}`, which Temporal returns with a heartbeat
  timeout, so a worker that died (kill -9) is accounted for too.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ActivityOutboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from workflows.contracts import E_WORKER_SHUTDOWN


class AttemptInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next)


class _Inbound(ActivityInboundInterceptor):
    def init(self, outbound: ActivityOutboundInterceptor) -> None:
        super().init(_Outbound(outbound))

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        attempt = activity.info().attempt
        try:
            result = await super().execute_activity(input)
        except asyncio.CancelledError:
            why = activity.cancellation_details()
            asked = why is not None and (why.cancel_requested or why.paused or why.reset)
            if activity.is_worker_shutdown() and not asked:  # a real cancel stays a cancel
                raise ApplicationError(
                    "the worker shut down before this attempt finished",
                    {"attempt": attempt},
                    type=E_WORKER_SHUTDOWN,
                ) from None
            raise
        except ApplicationError as e:
            raise _with_attempt(e, attempt) from e.__cause__
        except Exception as e:  # what the SDK would report as an ApplicationError anyway
            raise ApplicationError(str(e) or type(e).__name__, {"attempt": attempt},
                                   type=type(e).__name__) from e  # fmt: skip
        if hasattr(result, "attempt") and hasattr(result, "model_copy"):
            result = result.model_copy(update={"attempt": attempt})
        return result


class _Outbound(ActivityOutboundInterceptor):
    def heartbeat(self, *details: Any) -> None:
        attempt = activity.info().attempt
        first = details[0] if details else None
        stamped = {**first, "attempt": attempt} if isinstance(first, dict) else {"attempt": attempt}
        super().heartbeat(stamped, *details[1:])


def _with_attempt(e: ApplicationError, attempt: int) -> ApplicationError:
    """The same failure with `attempt` added to its first detail (when that is a dict)."""
    if e.details and not isinstance(e.details[0], dict):
        return e
    first = {**(e.details[0] if e.details else {}), "attempt": attempt}
    return ApplicationError(
        e.message,
        first,
        *e.details[1:],
        type=e.type,
        non_retryable=e.non_retryable,
        next_retry_delay=e.next_retry_delay,
        category=e.category,
    )
