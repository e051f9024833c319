"""The one place where failures become HTTP answers.

Routers raise `ApiError` or let store/Temporal exceptions through; the handlers here
turn them into `{"detail": ...}` with the right status: unknown things 404, illegal
state changes 409, bad input 422, Temporal unreachable 503. Temporal's gRPC status
codes become HTTP statuses in `map_rpc_error` only.

Every error body has one shape, `ErrorBody` (`detail`: a sentence saying what is
wrong; `problems`: each invalid field when there are several). Routers declare the
statuses they return with `responses(...)` on their `APIRouter`, so the OpenAPI
document describes the bodies the gateway really sends (FastAPI's default 422 schema,
with `detail` as an array, is replaced).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from duratask.access import AccessDenied
from duratask.logging import get_logger
from duratask.schedules.service import ScheduleError
from duratask.store.definitions import NotFound

log = get_logger(__name__)


class Problem(BaseModel):
    """One thing wrong with the input: the field (dotted path) or step, and why."""

    model_config = ConfigDict(extra="allow")
    message: str
    field: str | None = None
    step_id: str | None = None


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer."""

    model_config = ConfigDict(extra="allow")  # e.g. `run_status` on a 409
    detail: str = Field(description="What is wrong, in one sentence")
    problems: list[Problem] | None = Field(
        default=None, description="Each invalid field or step, when the input has several"
    )


ERROR_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing or invalid credentials",
    403: "The caller lacks the scope this needs",
    404: "Not found, or not visible to the caller",
    409: "Conflicts with the current state",
    410: "Gone: the link has expired or was already used",
    413: "The body or an input is larger than a limit (the detail names it)",
    422: "Invalid input: `detail` says what is wrong, `problems` lists each field",
    502: "Temporal answered with an unexpected error",
    503: "Temporal is unreachable",
}
# What every authenticated route can answer, and what a route that talks to Temporal adds.
COMMON = (400, 401, 403, 413, 422)
TEMPORAL = (502, 503)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring these error statuses with the shared error body."""
    return {
        code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]}
        for code in sorted(set(codes))
    }


class ApiError(Exception):
    def __init__(
        self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers
        self.extra = extra


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def conflict(detail: str, **extra: Any) -> ApiError:
    return ApiError(409, detail, **extra)


def unprocessable(detail: str, **extra: Any) -> ApiError:
    return ApiError(422, detail, **extra)


def unavailable(detail: str) -> ApiError:
    return ApiError(503, detail)


def pydantic_problems(err: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for e in err.errors():
        parts = list(e.get("loc", ()))
        if parts[:1] == ["body"]:  # FastAPI's location prefix (a field may be named body)
            parts = parts[1:]
        loc = ".".join(str(p) for p in parts)
        out.append({"field": loc or None, "message": e.get("msg", "invalid")})
    return out


def describe_problems(problems: list[dict[str, Any]]) -> str:
    parts = [f"{p['field']}: {p['message']}" if p.get("field") else p["message"] for p in problems]
    return "; ".join(parts)


def _json(
    status: int, detail: Any, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def map_rpc_error(e: RPCError, what: str = "run") -> ApiError:
    """Temporal's answer as the gateway's: the one mapping of gRPC status to HTTP."""
    if "exceeds limit" in e.message or "larger than max" in e.message:
        return ApiError(413, f"too large for Temporal: {e.message}")
    if e.status == RPCStatusCode.NOT_FOUND:
        return not_found(what)
    if e.status == RPCStatusCode.INVALID_ARGUMENT:
        return unprocessable(e.message)
    if e.status == RPCStatusCode.ALREADY_EXISTS:
        return conflict(e.message)
    if e.status == RPCStatusCode.FAILED_PRECONDITION:
        return conflict(e.message)
    if e.status in (
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
    ):
        return unavailable(f"Temporal is unavailable: {e.message}")
    return ApiError(502, f"Temporal error: {e.message}")


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, e: ApiError) -> JSONResponse:
        return _json(e.status, e.detail, e.headers, **e.extra)

    @app.exception_handler(NotFound)
    async def _nf(_: Request, e: NotFound) -> JSONResponse:
        return _json(404, str(e))

    @app.exception_handler(ScheduleError)
    async def _sched(_: Request, e: ScheduleError) -> JSONResponse:
        return _json(
            {"not_found": 404, "conflict": 409, "forbidden": 403}.get(e.kind, 422), e.message
        )

    @app.exception_handler(AccessDenied)
    async def _denied(_: Request, e: AccessDenied) -> JSONResponse:
        return _json(e.status, e.message)

    @app.exception_handler(RequestValidationError)
    async def _rv(_: Request, e: RequestValidationError) -> JSONResponse:
        problems = pydantic_problems(e)
        return _json(422, describe_problems(problems), problems=problems)

    @app.exception_handler(ValidationError)
    async def _pv(_: Request, e: ValidationError) -> JSONResponse:
        problems = pydantic_problems(e)
        return _json(422, describe_problems(problems), problems=problems)

    @app.exception_handler(RPCError)
    async def _rpc(_: Request, e: RPCError) -> JSONResponse:
        err = map_rpc_error(e)
        return _json(err.status, err.detail)

    @app.exception_handler(WorkflowAlreadyStartedError)
    async def _started(_: Request, e: WorkflowAlreadyStartedError) -> JSONResponse:
        return _json(409, f"run {e.workflow_id} already exists")

    @app.exception_handler(WorkflowFailureError)
    async def _wf(_: Request, e: WorkflowFailureError) -> JSONResponse:
        return _json(409, f"run failed: {e.cause}")

    @app.exception_handler(OverflowError)
    async def _overflow(_: Request, e: OverflowError) -> JSONResponse:
        # a number past what the store or Temporal can hold (SQLite: 64-bit integers)
        return _json(422, f"a number in the request is out of range: {e}")

    @app.exception_handler(ConnectionError)
    async def _conn(_: Request, e: ConnectionError) -> JSONResponse:
        return _json(503, f"service unavailable: {e}")
