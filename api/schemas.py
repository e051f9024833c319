"""Request and response bodies of the gateway (the run models themselves are in
`workflows.models`, shared with the workflow)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflows.definition import ModelSpec
from workflows.models import Priority, RunState

# Offsets, versions and counts past this are refused as input (422) before they reach
# SQLite (64-bit integers: OverflowError) or Temporal.
MAX_INT = 2_147_483_647


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRunRequest(_Body):
    definition_id: str
    version: int | None = Field(default=None, ge=1, le=MAX_INT)
    input: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.normal
    owner: str | None = Field(
        default=None, description="default: the caller; another identity needs tasks:admin"
    )
    team: str | None = Field(
        default=None, max_length=255, description="one of the caller's groups: shares the run"
    )
    idempotency_key: str | None = Field(default=None, max_length=200)
    start_at: datetime | None = None
    source: dict[str, str] = Field(default_factory=dict)
    trigger: Literal["api", "cli"] = "api"
    # this run's model settings, over the definition's and its steps' (field by field)
    model: ModelSpec | None = None

    @field_validator("source")
    @classmethod
    def _source(cls, v: dict[str, str]) -> dict[str, str]:
        return check_source(v)


SOURCE_MAX_KEYS = 16
SOURCE_MAX_VALUE = 2048


def check_source(source: dict[str, str]) -> dict[str, str]:
    """Provenance of a run (`kind`: chat | api | schedule | ..., `conversation_id`,
    `message_id`, `session_id`, `url`, ...): a few short strings, kept in the run."""
    if len(source) > SOURCE_MAX_KEYS:
        raise ValueError(f"at most {SOURCE_MAX_KEYS} keys")
    for key, value in source.items():
        if not key or len(key) > 64 or not key.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"key {key!r} must be 1-64 letters, digits, '_' or '-'")
        if len(value) > SOURCE_MAX_VALUE:
            raise ValueError(f"'{key}' is longer than {SOURCE_MAX_VALUE} characters")
    url = source.get("url")
    if url is not None and not url.startswith(("http://", "https://")):
        raise ValueError("'url' must be an http(s) URL")
    return source


class CancelRunRequest(_Body):
    reason: str = ""


class RetryRunRequest(_Body):
    input: dict[str, Any] | None = None


class PatchRunRequest(_Body):
    priority: Priority


class BulkCancelRequest(_Body):
    run_ids: list[str] = Field(min_length=1, max_length=1000)
    reason: str = ""


class MessageRequest(_Body):
    mode: Literal["steer", "collect", "followup"] = "collect"
    message: str = Field(min_length=1)


class RunSummary(BaseModel):
    run_id: str
    definition_id: str | None
    status: str
    owner: str | None = None
    team: str | None = None
    trigger: str | None = None
    priority: str | None = None
    proactive: bool = False
    parent_run_id: str | None = None
    start_time: datetime | None = None
    close_time: datetime | None = None
    temporal_ui_url: str | None = None
    # where the run came from (`source` of POST /v1/runs) and who holds it (a handoff)
    source: dict[str, str] = Field(default_factory=dict)
    assignee: str | None = None


class RunPage(BaseModel):
    items: list[RunSummary]
    next_page_token: str | None = None


class RatingSummary(BaseModel):
    up: int = 0
    down: int = 0


class RunView(RunState):
    """`GET /v1/runs/{id}`: the run's state plus what people said about it (the store)."""

    rating_summary: RatingSummary = Field(default_factory=RatingSummary)
    comment_count: int = 0
    assignee: str | None = None


class RunResult(BaseModel):
    run_id: str
    status: str
    done: bool
    result: Any = None
    error: Any = None
    state: RunState | None = None


class RunTreeStep(BaseModel):
    """One step of a run in the tree view, with the child runs it started."""

    id: str
    action: str
    label: str | None = None
    status: str
    children: list[RunTree] = Field(default_factory=list)


class RunTree(BaseModel):
    """A run and, recursively, every child it started: the data of a DAG view."""

    run_id: str
    definition_id: str
    definition_version: int
    status: str
    parent_run_id: str | None = None
    branch: str | None = None
    current_step: str | None = None
    percent: int = 0
    usage: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    temporal_ui_url: str | None = None
    steps: list[RunTreeStep] = Field(default_factory=list)


RunTreeStep.model_rebuild()
