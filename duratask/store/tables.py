"""SQLAlchemy tables. Schema changes go through an Alembic migration in `migrations/`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class DefinitionRow(Base):
    __tablename__ = "definitions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    latest_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # who may see and change it (duratask/access.py); set when it is first created
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    team: Mapped[str | None] = mapped_column(String(255), nullable=True)


class DefinitionVersionRow(Base):
    __tablename__ = "definition_versions"

    definition_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("definitions.id"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)


class ScheduleRow(Base):
    """duratask's index of its Temporal Schedules: config, who owns it, where it came from."""

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    team: Mapped[str | None] = mapped_column(String(255), nullable=True)
    definition_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # api | sync | tool
    config: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paused_by_switch: Mapped[bool] = mapped_column(Boolean, default=False)


class FlagRow(Base):
    """Small named settings changed at run time (e.g. `scheduling_enabled`)."""

    __tablename__ = "flags"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunRatingRow(Base):
    """One identity's thumbs up/down on a finished run (re-rating replaces it)."""

    __tablename__ = "run_ratings"

    run_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    identity: Mapped[str] = mapped_column(String(255), primary_key=True)
    score: Mapped[str] = mapped_column(String(8))  # up | down
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    definition_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunCommentRow(Base):
    """One entry of a run's thread: a comment, an operator note or a handoff."""

    __tablename__ = "run_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(512), index=True)
    author: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # comment | note | handoff
    body: Mapped[str] = mapped_column(Text)
    handoff_to: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunAssigneeRow(Base):
    """Who a run is currently handed to (the latest handoff wins)."""

    __tablename__ = "run_assignees"

    run_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    assignee: Mapped[str] = mapped_column(String(255), index=True)
    assigned_by: Mapped[str] = mapped_column(String(255))
    assigned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    comment_id: Mapped[int] = mapped_column(Integer)


class AuditRow(Base):
    """Who did what to which run, definition or schedule, and when (GET /v1/audit)."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(255), index=True)
    action: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))  # run | definition | schedule | scheduling
    resource_id: Mapped[str] = mapped_column(String(512), index=True)
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    team: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON


class UsageRow(Base):
    """One model call's usage, for the daily budgets per owner and per definition
    (docs/models-and-tools.md#budgets). `key` makes recording a call idempotent."""

    __tablename__ = "usage"
    __table_args__ = (
        Index("ix_usage_day_owner", "day", "owner"),
        Index("ix_usage_day_definition", "day", "definition_id"),
    )

    key: Mapped[str] = mapped_column(String(600), primary_key=True)
    day: Mapped[str] = mapped_column(String(10))  # UTC date, YYYY-MM-DD
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    definition_id: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str] = mapped_column(String(512))
    tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StreamDeltaRow(Base):
    """A transient live item (the model's text as it is written) relayed to the gateways
    outside the run's history; pruned after `stream_delta_ttl_s`."""

    __tablename__ = "stream_deltas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(512), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class HealthVerdictRow(Base):
    """The last health verdict of a definition: an alert fires only when it changes."""

    __tablename__ = "health_verdicts"

    definition_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16))
    report: Mapped[str] = mapped_column(Text)
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RunMentionRow(Base):
    """An @identity written in a comment: who was mentioned, where (lower-cased identity)."""

    __tablename__ = "run_mentions"

    comment_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)
    run_id: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UsedLinkRow(Base):
    """A delivered link that was used (duratask/links.py): a link decides only once.
    Rows past `expires_at` can go: the link is refused as expired anyway."""

    __tablename__ = "used_links"

    link_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(512))
    step_id: Mapped[str] = mapped_column(String(200))
    recipient: Mapped[str] = mapped_column(String(320))
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class RateLimitLockRow(Base):
    """One row per rate-limited model endpoint: updating it is the lock that serialises
    every worker's reservations for that endpoint (SQLite and PostgreSQL alike)."""

    __tablename__ = "rate_limit_locks"

    endpoint: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class RateLimitCallRow(Base):
    """A model call's slot under its endpoint's limits (docs/models-and-tools.md#rate-limits):
    when it starts (epoch seconds; a future time is a reservation) and its tokens (an
    estimate until the call answers). Rows older than two windows are pruned."""

    __tablename__ = "rate_limit_calls"
    __table_args__ = (Index("ix_rate_limit_calls_endpoint_at", "endpoint", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(200))
    at: Mapped[float] = mapped_column(Float)
    tokens: Mapped[int] = mapped_column(Integer)
    claimed: Mapped[bool] = mapped_column(Boolean, default=False)
