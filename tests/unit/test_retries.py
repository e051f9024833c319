"""How the workflow tells a worker going away from a failure of the work."""

from __future__ import annotations

from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

from workflows import contracts, retries
from workflows.definition import RetrySpec


def _activity_error(cause: BaseException, state: RetryState | None = None) -> ActivityError:
    err = ActivityError(
        "activity failed", scheduled_event_id=5, started_event_id=6, identity="w",
        activity_type="duratask.tool.call", activity_id="1", retry_state=state,
    )  # fmt: skip
    err.__cause__ = cause
    return err


def test_policy_gets_what_is_left_of_the_budget() -> None:
    spec = RetrySpec(max_attempts=4)
    assert retries.retry_policy(spec, "tool_call").maximum_attempts == 4
    assert retries.retry_policy(spec, "tool_call", used=3).maximum_attempts == 1
    assert retries.retry_policy(None, "llm_call").maximum_attempts == 5
    old = retries.retry_policy(spec, "tool_call").non_retryable_error_types or []
    new = retries.retry_policy(spec, "tool_call", interruptible=True).non_retryable_error_types
    assert contracts.E_WORKER_SHUTDOWN not in old
    assert {contracts.E_WORKER_SHUTDOWN, contracts.HEARTBEAT_TIMEOUT_TYPE} <= set(new or [])


def test_shutdown_and_heartbeat_timeout_are_interruptions() -> None:
    shutdown = ApplicationError("bye", {"attempt": 2}, type=contracts.E_WORKER_SHUTDOWN)
    assert retries.interrupted_at(_activity_error(shutdown)) == 2
    # the SDK's own report (no attempt stamp): an interruption, attempt unknown
    bare = ApplicationError("bye", type=contracts.E_WORKER_SHUTDOWN)
    assert retries.interrupted_at(_activity_error(bare)) == 0
    lost = TimeoutError("hb", type=TimeoutType.HEARTBEAT, last_heartbeat_details=[{"attempt": 3}])
    assert retries.interrupted_at(_activity_error(lost)) == 3


def test_failures_of_the_work_are_not_interruptions() -> None:
    boom = ApplicationError("500", {"attempt": 2}, type="HTTPError")
    assert retries.interrupted_at(_activity_error(boom)) is None
    slow = TimeoutError("slow", type=TimeoutType.START_TO_CLOSE, last_heartbeat_details=[])
    assert retries.interrupted_at(_activity_error(slow)) is None
    assert retries.failed_at(_activity_error(boom), budget_left=3) == 2
    exhausted = _activity_error(slow, RetryState.MAXIMUM_ATTEMPTS_REACHED)
    assert retries.failed_at(exhausted, budget_left=3) == 3
