"""Step retries that count failures of the work, not workers going away.

A step's `retry.max_attempts` is a budget for the work failing (a tool's 500, a model's
429). An attempt cut short because its worker shut down (`WorkerShutdown`) or vanished
(a heartbeat timeout: kill -9, a lost machine) says nothing about the work, so a deploy
that rolls the workers must not use that budget up. Temporal's retry policy cannot tell
the two apart, so:

- the policy handed to Temporal marks both interruption kinds non-retryable: they come
  back to the workflow at once, every other failure is retried by Temporal as usual;
- the workflow then schedules the call again (same activity, same idempotency key) with
  only what is left of the budget, without counting the interrupted attempt;
- the worker (worker/attempts.py) stamps every result, failure and heartbeat with the
  attempt number, so the workflow knows how many attempts each scheduling used and
  `steps[].attempts` shows exactly what Temporal ran;
- interruptions have their own cap (`RunConfig.max_interruptions` per call) so an
  activity that itself kills its worker (out of memory) still ends, as `WORKER_LOST`.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import RetryPolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

from workflows import contracts
from workflows.definition import RetrySpec
from workflows.durations import parse_duration

NON_RETRYABLE = ["NonRetryable", "ToolNotAllowed", "InvalidArguments"]
INTERRUPTIONS = [contracts.E_WORKER_SHUTDOWN, contracts.HEARTBEAT_TIMEOUT_TYPE]


def default_spec(action: str) -> RetrySpec:
    return RetrySpec(max_attempts=5 if action == "llm_call" else 3)


def retry_policy(
    spec: RetrySpec | None, action: str, used: int = 0, interruptible: bool = False
) -> RetryPolicy:
    """The Temporal policy for the rest of a call's budget (`used` failed attempts so far).

    `interruptible`: worker shutdowns and heartbeat timeouts come back to the workflow
    (which reschedules them uncounted) instead of being retried by Temporal.
    """
    spec = spec or default_spec(action)
    return RetryPolicy(
        maximum_attempts=max(1, spec.max_attempts - used),
        initial_interval=parse_duration(spec.initial_interval),
        backoff_coefficient=spec.backoff,
        maximum_interval=parse_duration(spec.max_interval),
        non_retryable_error_types=NON_RETRYABLE + (INTERRUPTIONS if interruptible else []),
    )


def _attempt_in(details: Any) -> int | None:
    first = details[0] if details else None
    if isinstance(first, dict) and isinstance(first.get("attempt"), int):
        return int(first["attempt"])
    return None


def interrupted_at(err: BaseException) -> int | None:
    """The attempt a worker shutdown or loss cut short (0: not known), or None."""
    if not isinstance(err, ActivityError):
        return None
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type == contracts.E_WORKER_SHUTDOWN:
        return _attempt_in(cause.details) or 0
    if isinstance(cause, TimeoutError) and cause.type == TimeoutType.HEARTBEAT:
        return _attempt_in(cause.last_heartbeat_details) or 0
    return None


def failed_at(err: BaseException, budget_left: int) -> int:
    """How many attempts a scheduling that ended in a real failure ran (at least 1)."""
    if isinstance(err, ActivityError):
        cause = err.cause
        if isinstance(cause, ApplicationError) and (n := _attempt_in(cause.details)):
            return n
        if err.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED:
            return budget_left
    return 1
