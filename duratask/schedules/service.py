"""The schedule service: duratask schedules as Temporal Schedules.

One implementation for every caller: the gateway's `/v1/schedules`, the CLI (through
the gateway), job-file sync, and the model's `schedule_task` / `list_tasks` /
`cancel_task` tools in the worker. Each schedule is a Temporal Schedule `sched-<slug>`
whose action starts a `TaskRunWorkflow` marked trigger `schedule` with the schedule id
(Temporal appends the fire time to the run id). With a pinned version the action
carries the bundle; otherwise the run resolves the latest version when it fires.
Failures are `ScheduleError`s with a kind the gateway turns into 403/404/409/422.

A ScheduleService acts for one caller: a schedule is owned by the identity that
created it (another owner needs `tasks:admin`) and optionally shared with a team; the
caller sees and changes only their own and their teams' schedules (duratask/access.py),
the rest is "not found"; the global switch needs `tasks:admin`. Every change is
recorded in the audit trail. The worker's scheduling tools act as `SYSTEM` and
enforce their own rule (a run's tools act for the run's owner).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from croniter import croniter
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.common import Priority as TemporalPriority
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from duratask.access import (
    ADMIN_SCOPE,
    AccessDenied,
    Caller,
    check_child_owners,
    is_admin,
    may_see,
    resolve_owner,
)
from duratask.logging import get_logger
from duratask.run_config import run_config
from duratask.schedules.ids import schedule_id_for
from duratask.schedules.models import (
    SPEC_FIELDS,
    ScheduleConfig,
    ScheduleCreate,
    ScheduledRun,
    ScheduleView,
    Source,
)
from duratask.schedules.models import (
    ScheduleUpdate as ScheduleUpdateBody,
)
from duratask.schedules.spec import ParsedSpec, SpecError, describe, parse_every, parse_spec
from duratask.schedules.store import ScheduleStore
from duratask.settings import Settings
from duratask.store.audit import AuditStore
from duratask.store.definitions import DefinitionStore, NotFound
from duratask.store.tables import ScheduleRow
from workflows import contracts
from workflows.definition import ModelSpec, TaskDefinition
from workflows.durations import parse_duration
from workflows.inputs import InputError, resolve_inputs
from workflows.models import RunInput, RunMeta, RunState, Trigger
from workflows.run_workflow import TaskRunWorkflow

log = get_logger(__name__)

SWITCH_NOTE = "scheduling disabled (global switch)"
DISABLED_MESSAGE = (
    "scheduling is disabled: no scheduled task will run and none can be created or "
    "changed until an operator turns scheduling back on"
)
OVERLAP = {
    "skip": ScheduleOverlapPolicy.SKIP,
    "buffer_one": ScheduleOverlapPolicy.BUFFER_ONE,
    "buffer_all": ScheduleOverlapPolicy.BUFFER_ALL,
    "cancel_other": ScheduleOverlapPolicy.CANCEL_OTHER,
    "allow_all": ScheduleOverlapPolicy.ALLOW_ALL,
}
RUN_STATUS = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "cancelled",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
}


class ScheduleError(Exception):
    """kind: not_found (404) | invalid (422) | conflict (409)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def invalid(message: str) -> ScheduleError:
    return ScheduleError("invalid", message)


def adhoc_definition(
    prompt: str, name: str | None = None, model: ModelSpec | None = None
) -> TaskDefinition:
    """A prompt-only job or task: one llm_call step, id derived from its content."""
    body = json.dumps([prompt, model.model_dump(exclude_none=True) if model else None])
    digest = hashlib.sha256(body.encode()).hexdigest()[:12]
    return TaskDefinition.model_validate(
        {
            "id": f"adhoc-{digest}",
            "name": name,
            "description": "created for a scheduled prompt",
            "model": model.model_dump(exclude_none=True) if model else None,
            "steps": [{"id": "run", "action": "llm_call", "prompt": prompt, "tools": []}],
        }
    )


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


class ScheduleService:
    def __init__(
        self, client: Client, store: DefinitionStore, settings: Settings, principal: Caller
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.principal = principal
        self.index = ScheduleStore(store.engine)
        self.audit = AuditStore(store.engine)

    async def _record(
        self,
        action: str,
        row: ScheduleRow | None,
        sid: str,
        actor: str | None = None,
        **detail: Any,
    ) -> None:
        await self.audit.record(
            actor or self.principal.identity, action, "schedule", sid,
            row.owner if row is not None else None, row.team if row is not None else None,
            **detail,
        )  # fmt: skip

    # ------------------------------------------------------------ building
    def _parse(self, cfg: ScheduleConfig) -> ParsedSpec:
        try:
            at = cfg.at.isoformat() if isinstance(cfg.at, datetime) else cfg.at
            parsed = parse_spec(
                cron=cfg.cron, every=cfg.every, text=cfg.text, at=at, timezone=cfg.timezone
            )
            if cfg.jitter:
                parse_every(cfg.jitter)
        except SpecError as e:
            raise invalid(str(e)) from None
        start, end = _utc(cfg.start_at), _utc(cfg.end_at)
        if end is not None and end <= datetime.now(UTC):
            raise invalid(f"end_at {end.isoformat()} is in the past")
        if start and end and end <= start:
            raise invalid("end_at must be after start_at")
        return parsed

    async def _run_input(self, sid: str, cfg: ScheduleConfig, by: str | None) -> RunInput:
        try:
            stored = await self.store.get(cfg.definition_id, cfg.version)
            if not may_see(self.principal, stored.owner, stored.team):
                raise NotFound(f"definition '{cfg.definition_id}' not found")
            bundle = await self.store.bundle(cfg.definition_id, cfg.version)
            check_child_owners(self.principal, bundle, cfg.owner or self.principal.identity)
        except NotFound as e:
            raise ScheduleError("not_found", str(e)) from None
        except AccessDenied as e:
            raise ScheduleError("forbidden", e.message) from None
        try:
            inputs = resolve_inputs(bundle.root.definition, cfg.input)
        except InputError as e:
            raise invalid(f"input: {e}") from None
        meta = RunMeta(
            owner=cfg.owner,
            team=cfg.team,
            priority=cfg.priority,
            trigger=Trigger.schedule,
            schedule_id=sid,
            created_by=by,
            source={"kind": "schedule", "schedule_id": sid},
        )
        config = run_config(self.settings)
        pinned = cfg.version is not None
        return RunInput(
            bundle=bundle if pinned else None,
            definition_id=cfg.definition_id,
            version=cfg.version,
            input=inputs if pinned else cfg.input,
            meta=meta,
            config=config,
        )

    def _spec(self, cfg: ScheduleConfig, parsed: ParsedSpec) -> ScheduleSpec:
        common: dict[str, Any] = {
            "start_at": _utc(cfg.start_at),
            "end_at": _utc(cfg.end_at),
            "jitter": parse_every(cfg.jitter) if cfg.jitter else None,
            "time_zone_name": cfg.timezone,
        }
        if parsed.cron is not None:
            return ScheduleSpec(cron_expressions=[parsed.cron], **common)
        if parsed.every is not None:
            return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=parsed.every)], **common)
        at = parsed.at
        assert at is not None
        calendar = ScheduleCalendarSpec(
            second=[ScheduleRange(at.second)],
            minute=[ScheduleRange(at.minute)],
            hour=[ScheduleRange(at.hour)],
            day_of_month=[ScheduleRange(at.day)],
            month=[ScheduleRange(at.month)],
            year=[ScheduleRange(at.year)],
            comment="one-time",
        )
        common["time_zone_name"] = "UTC"  # parsed.at is already UTC
        return ScheduleSpec(calendars=[calendar], **common)

    def _schedule(
        self, sid: str, cfg: ScheduleConfig, parsed: ParsedSpec, inp: RunInput, state: ScheduleState
    ) -> Schedule:
        attrs: list[SearchAttributePair[Any]] = [
            SearchAttributePair(contracts.SA_DEFINITION, cfg.definition_id),
            SearchAttributePair(contracts.SA_STATUS, "queued"),
            SearchAttributePair(contracts.SA_TRIGGER, Trigger.schedule.value),
            SearchAttributePair(contracts.SA_PRIORITY, cfg.priority.value),
            SearchAttributePair(contracts.SA_SCHEDULE, sid),
        ]
        if cfg.owner:
            attrs.append(SearchAttributePair(contracts.SA_OWNER, cfg.owner))
        if cfg.team:
            attrs.append(SearchAttributePair(contracts.SA_TEAM, cfg.team))
        if parsed.at is not None:
            state = ScheduleState(
                note=state.note, paused=state.paused, limited_actions=True, remaining_actions=1
            )
        return Schedule(
            action=ScheduleActionStartWorkflow(
                TaskRunWorkflow.run,
                inp,
                id=f"run-{sid}",
                task_queue=self.settings.task_queue,
                typed_search_attributes=TypedSearchAttributes(attrs),
                static_summary=f"{cfg.definition_id} (schedule {sid})",
                static_details=cfg.description,
                priority=TemporalPriority(priority_key=cfg.priority.key, fairness_key=cfg.owner),
            ),
            spec=self._spec(cfg, parsed),
            policy=SchedulePolicy(
                overlap=OVERLAP[cfg.overlap], pause_on_failure=cfg.pause_on_failure
            ),
            state=state,
        )

    # ------------------------------------------------------------ create / read
    async def create(
        self, req: ScheduleCreate, identity: str | None, source: Source = "api"
    ) -> ScheduleView:
        cfg = ScheduleConfig.model_validate(req.model_dump(exclude={"id", "paused", "note"}))
        cfg = self._owned(cfg)
        name = req.id or req.description or req.definition_id
        sid = schedule_id_for(name, unique=req.id is None)
        return await self._create(sid, cfg, self.principal.identity, source, req.paused, req.note)

    def _owned(self, cfg: ScheduleConfig) -> ScheduleConfig:
        """The config with its owner (the caller unless an admin names one) and team."""
        try:
            owner, team = resolve_owner(self.principal, cfg.owner, cfg.team)
        except AccessDenied as e:
            raise ScheduleError("forbidden", e.message) from None
        return cfg.model_copy(update={"owner": owner, "team": team})

    async def _create(
        self,
        sid: str,
        cfg: ScheduleConfig,
        identity: str | None,
        source: Source,
        paused: bool = False,
        note: str | None = None,
    ) -> ScheduleView:
        parsed = self._parse(cfg)
        inp = await self._run_input(sid, cfg, identity)
        enabled = await self.index.enabled()
        by_switch = not enabled and not paused
        state = ScheduleState(paused=paused or not enabled, note=SWITCH_NOTE if by_switch else note)
        now = datetime.now(UTC)
        row = ScheduleRow(
            id=sid, owner=cfg.owner, team=cfg.team, definition_id=cfg.definition_id, source=source,
            config=cfg.model_dump_json(exclude_none=True), created_at=now, created_by=identity,
            updated_at=now, paused_by_switch=by_switch,
        )  # fmt: skip
        if not await self.index.insert(row):
            raise ScheduleError("conflict", f"schedule '{sid}' already exists")
        try:
            await self.client.create_schedule(
                sid,
                self._schedule(sid, cfg, parsed, inp, state),
                memo={"duratask": {"source": source, "owner": cfg.owner}},
            )
        except ScheduleAlreadyRunningError:
            await self.index.delete(sid)
            raise ScheduleError(
                "conflict", f"schedule '{sid}' already exists in Temporal"
            ) from None
        except RPCError as e:
            await self.index.delete(sid)
            if e.status == RPCStatusCode.INVALID_ARGUMENT:
                raise invalid(f"Temporal rejected the schedule: {e.message}") from None
            raise
        log.info("schedule created", schedule_id=sid, source=source, spec=parsed.expression)
        await self._record("schedule.create", row, sid, actor=identity,  # a tool: run:<id>
                           definition_id=cfg.definition_id, spec=parsed.expression,
                           source=source)  # fmt: skip
        return await self.get(sid)

    async def _row(self, sid: str) -> ScheduleRow:
        """The schedule's index row; not found unless the caller may see it."""
        row = await self.index.get(sid)
        if row is None or not may_see(self.principal, row.owner, row.team):
            raise ScheduleError("not_found", f"schedule '{sid}' not found")
        return row

    async def _describe(self, sid: str) -> ScheduleDescription:
        try:
            return await self.client.get_schedule_handle(sid).describe()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                await self.index.delete(sid)  # deleted in Temporal directly: forget it
                raise ScheduleError("not_found", f"schedule '{sid}' not found") from None
            raise

    async def get(self, sid: str, detail: bool = True) -> ScheduleView:
        row = await self._row(sid)
        desc = await self._describe(sid)
        return await self._view(row, desc, detail)

    async def list(
        self, owner: str | None = None, status: str | None = None, detail: bool = False
    ) -> list[ScheduleView]:
        rows = [
            r for r in await self.index.list(owner=owner)
            if may_see(self.principal, r.owner, r.team)
        ]  # fmt: skip

        async def one(row: ScheduleRow) -> ScheduleView | None:
            try:
                return await self._view(row, await self._describe(row.id), detail)
            except ScheduleError:
                return None

        views = [v for v in await asyncio.gather(*(one(r) for r in rows)) if v is not None]
        return [v for v in views if status is None or v.status == status]

    async def _view(
        self, row: ScheduleRow, desc: ScheduleDescription, detail: bool
    ) -> ScheduleView:
        cfg = ScheduleConfig.model_validate_json(row.config)
        parsed = self._parse_stored(cfg)
        state = desc.schedule.state
        info = desc.info
        recent: list[ScheduledRun] = []
        for a in reversed(info.recent_actions):
            if isinstance(a.action, ScheduleActionExecutionStartWorkflow):
                recent.append(
                    ScheduledRun(
                        run_id=a.action.workflow_id,
                        scheduled_at=a.scheduled_at,
                        started_at=a.started_at,
                    )
                )
        running = [
            a.workflow_id
            for a in info.running_actions
            if isinstance(a, ScheduleActionExecutionStartWorkflow)
        ]
        done = state.limited_actions and state.remaining_actions == 0
        view = ScheduleView(
            id=row.id,
            definition_id=cfg.definition_id,
            version=cfg.version,
            description=cfg.description,
            human=describe(parsed, cfg.timezone) if parsed else "(invalid spec)",
            spec=_spec_view(cfg, parsed),
            timezone=cfg.timezone,
            overlap=cfg.overlap,
            jitter=cfg.jitter,
            start_at=cfg.start_at,
            end_at=cfg.end_at,
            pause_on_failure=cfg.pause_on_failure,
            input=cfg.input,
            priority=cfg.priority,
            owner=row.owner,
            team=row.team,
            source=row.source,  # type: ignore[arg-type]
            status="paused" if state.paused else ("completed" if done else "active"),
            paused=state.paused,
            note=state.note or None,
            paused_by_switch=row.paused_by_switch,
            next_fire_times=list(info.next_action_times[:5]),
            recent_runs=recent,
            running=running,
            num_actions=info.num_actions,
            skipped_overlap=info.num_actions_skipped_overlap,
            created_at=_utc(row.created_at),
            created_by=row.created_by,
            temporal_ui_url=f"{self.settings.temporal_ui_url}/namespaces/"
            f"{self.settings.namespace}/schedules/{row.id}",
        )
        if detail and recent:
            await self._fill_runs(view)
        return view

    def _parse_stored(self, cfg: ScheduleConfig) -> ParsedSpec | None:
        try:
            at = cfg.at.isoformat() if isinstance(cfg.at, datetime) else cfg.at
            return parse_spec(
                cron=cfg.cron, every=cfg.every, text=cfg.text, at=at, timezone=cfg.timezone,
                now=datetime(1970, 1, 1, tzinfo=UTC),  # a one-time spec may be past by now
            )  # fmt: skip
        except SpecError:
            return None

    async def _fill_runs(self, view: ScheduleView) -> None:
        """Status of each recent run, and the newest closed run's result or error."""

        async def status(run: ScheduledRun) -> None:
            try:
                desc = await self.client.get_workflow_handle(run.run_id).describe()
                run.status = RUN_STATUS.get(desc.status, "unknown") if desc.status else None
            except RPCError:
                run.status = "unknown"

        await asyncio.gather(*(status(r) for r in view.recent_runs))
        last = next((r for r in view.recent_runs if r.status not in ("running", None)), None)
        if last is None:
            return
        handle = self.client.get_workflow_handle_for(TaskRunWorkflow.run, last.run_id)
        try:
            state = await handle.result()
            view.last_result = state.result
        except WorkflowFailureError as e:
            cause = e.cause
            if isinstance(cause, ApplicationError) and cause.details:
                failed = RunState.model_validate(cause.details[0])
                view.last_error = failed.error.message if failed.error else cause.message
            else:
                view.last_error = str(cause or e)
        except RPCError:
            pass

    # ------------------------------------------------------------ change
    async def update(
        self, sid: str, patch: ScheduleUpdateBody, identity: str | None
    ) -> ScheduleView:
        row = await self._row(sid)
        await self._refuse_when_disabled()
        changes = patch.model_dump(exclude_unset=True)
        cfg_data = ScheduleConfig.model_validate_json(row.config).model_dump()
        if any(k in changes for k in SPEC_FIELDS):
            for k in SPEC_FIELDS:
                cfg_data[k] = None
        cfg_data.update(changes)
        try:
            cfg = ScheduleConfig.model_validate(cfg_data)
        except ValueError as e:
            raise invalid(str(e)) from None
        if "owner" in changes or "team" in changes:  # a new owner needs admin, a team membership
            cfg = self._owned(cfg)
        spec_changed = any(k in changes for k in SPEC_FIELDS)
        stored = None if spec_changed else self._parse_stored(cfg)
        parsed = self._parse(cfg) if stored is None else stored
        inp = await self._run_input(sid, cfg, identity)

        def apply(current: ScheduleUpdateInput) -> ScheduleUpdate:
            old = current.description.schedule.state
            keep = ScheduleState(note=old.note, paused=old.paused)
            return ScheduleUpdate(schedule=self._schedule(sid, cfg, parsed, inp, keep))

        await self._describe(sid)
        await self.client.get_schedule_handle(sid).update(apply)
        await self.index.update(
            sid, config=cfg.model_dump_json(exclude_none=True), owner=cfg.owner, team=cfg.team
        )
        log.info("schedule updated", schedule_id=sid, fields=sorted(changes))
        await self._record("schedule.update", row, sid, fields=sorted(changes))
        return await self.get(sid)

    async def delete(self, sid: str) -> None:
        row = await self._row(sid)
        try:
            await self.client.get_schedule_handle(sid).delete()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
        await self.index.delete(sid)
        log.info("schedule deleted", schedule_id=sid)
        await self._record("schedule.delete", row, sid)

    async def pause(self, sid: str, note: str | None) -> ScheduleView:
        row = await self._row(sid)
        await self._describe(sid)
        await self.client.get_schedule_handle(sid).pause(note=note or "paused")
        await self.index.update(sid, paused_by_switch=False)
        await self._record("schedule.pause", row, sid, note=note)
        return await self.get(sid, detail=False)

    async def unpause(self, sid: str, note: str | None) -> ScheduleView:
        row = await self._row(sid)
        await self._refuse_when_disabled()
        await self._describe(sid)
        await self.client.get_schedule_handle(sid).unpause(note=note or "unpaused")
        await self.index.update(sid, paused_by_switch=False)
        await self._record("schedule.unpause", row, sid, note=note)
        return await self.get(sid, detail=False)

    async def _refuse_when_disabled(self) -> None:
        if not await self.index.enabled():
            raise ScheduleError("conflict", DISABLED_MESSAGE)

    async def trigger(self, sid: str, overlap: str = "allow_all") -> None:
        row = await self._row(sid)
        await self._refuse_when_disabled()
        await self._describe(sid)
        await self.client.get_schedule_handle(sid).trigger(overlap=OVERLAP[overlap])
        log.info("schedule triggered", schedule_id=sid)
        await self._record("schedule.trigger", row, sid, overlap=overlap)

    async def backfill(
        self, sid: str, start_at: datetime, end_at: datetime, overlap: str = "allow_all"
    ) -> None:
        start, end = _utc(start_at), _utc(end_at)
        assert start is not None and end is not None
        if end <= start:
            raise invalid("backfill end_at must be after start_at")
        row = await self._row(sid)
        self._check_backfill(ScheduleConfig.model_validate_json(row.config), start, end)
        await self._refuse_when_disabled()
        await self._describe(sid)
        await self.client.get_schedule_handle(sid).backfill(
            ScheduleBackfill(start_at=start, end_at=end, overlap=OVERLAP[overlap])
        )
        log.info("schedule backfill", schedule_id=sid, start=start.isoformat(), end=end.isoformat())
        await self._record("schedule.backfill", row, sid, start_at=start, end_at=end)

    def _check_backfill(self, cfg: ScheduleConfig, start: datetime, end: datetime) -> None:
        """Bound a backfill by span and by the runs it would start (422 naming the limit)."""
        span = parse_duration(self.settings.schedule_backfill_max_span)
        if end - start > span:
            raise invalid(
                f"backfill spans more than the limit of {self.settings.schedule_backfill_max_span}"
            )
        limit = self.settings.schedule_backfill_max_runs
        parsed = self._parse_stored(cfg)
        if parsed is None or parsed.kind == "at":
            return
        if parsed.every is not None:
            count = int((end - start) / parsed.every)
        else:
            assert parsed.cron is not None
            times = croniter(parsed.cron, start)
            count = 0
            while count <= limit and times.get_next(datetime) <= end:
                count += 1
        if count > limit:
            raise invalid(f"backfill would start more than the limit of {limit:,} runs")

    # ------------------------------------------------------------ global switch
    async def enabled(self) -> bool:
        return await self.index.enabled()

    async def set_enabled(self, enabled: bool) -> dict[str, Any]:
        """Off: pause every running duratask schedule (remembering which). On: resume those.
        It acts on everyone's schedules, so it needs `tasks:admin`."""
        if not is_admin(self.principal):
            raise ScheduleError(
                "forbidden",
                f"'{self.principal.identity}' may not switch scheduling for everyone: "
                f"that needs the '{ADMIN_SCOPE}' scope",
            )
        await self.index.set_enabled(enabled)
        changed: list[str] = []
        for row in await self.index.list():
            handle = self.client.get_schedule_handle(row.id)
            try:
                if not enabled:
                    desc = await handle.describe()
                    if not desc.schedule.state.paused:
                        await handle.pause(note=SWITCH_NOTE)
                        await self.index.update(row.id, paused_by_switch=True)
                        changed.append(row.id)
                elif row.paused_by_switch:
                    await handle.unpause(note="scheduling re-enabled")
                    await self.index.update(row.id, paused_by_switch=False)
                    changed.append(row.id)
            except RPCError as e:
                if e.status != RPCStatusCode.NOT_FOUND:
                    raise
                await self.index.delete(row.id)
        log.info("scheduling switched", enabled=enabled, schedules=changed)
        await self.audit.record(
            self.principal.identity, "scheduling.switch", "scheduling", "scheduling",
            enabled=enabled, schedules=changed,
        )  # fmt: skip
        return {"enabled": enabled, ("resumed" if enabled else "paused"): changed}

    # ------------------------------------------------ for the model's scheduling tools
    async def require_enabled(self) -> None:
        if not await self.index.enabled():
            raise ScheduleError("conflict", DISABLED_MESSAGE)

    async def create_once(
        self, sid: str, cfg: ScheduleConfig, by: str, source: Literal["api", "sync", "tool"]
    ) -> ScheduleView:
        """Create `sid`, or return it when it exists (a retried tool call: already done)."""
        if await self.index.get(sid) is not None:
            return await self.get(sid, detail=False)
        return await self._create(sid, cfg, by, source)

    async def owned_by(self, sid: str, owner: str | None) -> bool:
        row = await self.index.get(sid)
        return row is not None and row.owner == owner


def _spec_view(cfg: ScheduleConfig, parsed: ParsedSpec | None) -> dict[str, Any]:
    given = {k: getattr(cfg, k) for k in SPEC_FIELDS if getattr(cfg, k) is not None}
    kind = next(iter(given), None)
    return given | {"kind": kind, "expression": parsed.expression if parsed else None}
