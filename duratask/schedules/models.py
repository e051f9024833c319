"""The shapes of a duratask schedule: its config (what the user asked for, kept in the
store) and the view the gateway, CLI and tools show (config + live Temporal state)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from workflows.models import Priority

Overlap = Literal["skip", "buffer_one", "buffer_all", "cancel_other", "allow_all"]
Source = Literal["api", "sync", "tool"]
SPEC_FIELDS = ("cron", "every", "text", "at")


class ScheduleConfig(BaseModel):
    """What runs, when, and how firings interact. Exactly one of cron/every/text/at."""

    model_config = ConfigDict(extra="forbid")

    definition_id: str
    version: int | None = Field(default=None, description="pin a version; default: latest")
    input: dict[str, Any] = Field(default_factory=dict)
    priority: Priority = Priority.normal
    owner: str | None = Field(
        default=None, description="default: the caller; another identity needs tasks:admin"
    )
    team: str | None = Field(default=None, description="one of the caller's groups")
    cron: str | None = Field(default=None, description="5-field cron, 0 = Sunday")
    every: str | None = Field(default=None, description="an interval like 15m")
    text: str | None = Field(default=None, description="e.g. '8am daily'")
    at: datetime | str | None = Field(default=None, description="one time, ISO 8601")
    timezone: str = "UTC"
    overlap: Overlap = "skip"
    jitter: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    description: str | None = None
    pause_on_failure: bool = False


class ScheduleCreate(ScheduleConfig):
    id: str | None = Field(default=None, description="becomes sched-<id>; default: generated")
    paused: bool = False
    note: str | None = None


class ScheduleUpdate(BaseModel):
    """PATCH: only the fields given change; giving one spec field replaces the spec."""

    model_config = ConfigDict(extra="forbid")

    version: int | None = None
    input: dict[str, Any] | None = None
    priority: Priority | None = None
    owner: str | None = None
    team: str | None = None
    cron: str | None = None
    every: str | None = None
    text: str | None = None
    at: datetime | str | None = None
    timezone: str | None = None
    overlap: Overlap | None = None
    jitter: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    description: str | None = None
    pause_on_failure: bool | None = None


class ScheduledRun(BaseModel):
    run_id: str
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    status: str | None = None


class ScheduleView(BaseModel):
    id: str
    definition_id: str
    version: int | None
    description: str | None
    human: str = Field(description="the spec in words, e.g. 'Daily at 9:00'")
    spec: dict[str, Any]
    timezone: str
    overlap: Overlap
    jitter: str | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    pause_on_failure: bool
    input: dict[str, Any]
    priority: Priority
    owner: str | None
    team: str | None = None
    source: Source
    status: Literal["active", "paused", "completed"]
    paused: bool
    note: str | None = None
    paused_by_switch: bool = False
    next_fire_times: list[datetime] = Field(default_factory=list)
    recent_runs: list[ScheduledRun] = Field(default_factory=list)
    running: list[str] = Field(default_factory=list)
    last_result: Any = None
    last_error: str | None = None
    num_actions: int = 0
    skipped_overlap: int = 0
    created_at: datetime | None = None
    created_by: str | None = None
    temporal_ui_url: str | None = None


class SchedulingSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start_at: datetime
    end_at: datetime
    overlap: Overlap = "allow_all"


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = None


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    overlap: Overlap = "allow_all"
