"""Errors the interpreter raises and how activity failures become `RunError`s."""

from __future__ import annotations

from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

from workflows import contracts
from workflows.models import RunError


class StepFailure(Exception):
    """A step ended in failure; carries the structured error for the run."""

    def __init__(self, error: RunError) -> None:
        super().__init__(error.message)
        self.error = error


def fail(code: str, message: str, step_id: str | None = None, **details: object) -> StepFailure:
    return StepFailure(RunError(code=code, message=message, step_id=step_id, details=details))


def from_exception(err: BaseException, step_id: str | None) -> RunError:
    """Map an activity/child failure to the structured error users see."""
    cause: BaseException | None = err
    if isinstance(err, ActivityError | ChildWorkflowError) and err.cause is not None:
        cause = err.cause
        while isinstance(cause, ActivityError | ChildWorkflowError) and cause.cause is not None:
            cause = cause.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        retry_after = details.get("retry_after") if isinstance(details, dict) else None
        return RunError(
            code=cause.type or contracts.E_STEP_FAILED,
            message=cause.message,
            step_id=step_id,
            retry_after=retry_after,
            details={k: v for k, v in details.items() if k != "retry_after"},
        )
    message = str(cause) if cause is not None else str(err)
    code = type(cause).__name__.upper() if cause is not None else contracts.E_STEP_FAILED
    if "timeout" in code.lower():
        code = contracts.E_TIMEOUT
    return RunError(code=code, message=message or code, step_id=step_id)
