"""Run operations, shared by the runs router and anything else that starts runs.

Runs live only in Temporal: starting one is `start_workflow` with the pinned bundle;
reading one is a query while it runs, its result or failure details once closed;
listing is a visibility query over duratask's search attributes.

A RunService acts for one caller (the principal): every read goes through
`describe()`, which answers 404 for a workflow that is not a duratask run or that the
caller may not see (duratask/access.py), and every change is recorded in the audit
trail with the caller's identity.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import Priority as TemporalPriority
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from ulid import ULID

from api.errors import ApiError, conflict, map_rpc_error, not_found, unprocessable
from api.history import start_input, state_from_input
from api.observability import note
from api.paging import decode_page_token, encode_page_token
from api.schemas import RunSummary, RunTree, RunTreeStep, StartRunRequest
from duratask import access
from duratask.access import AccessDenied, Caller, may_see, resolve_owner
from duratask.logging import get_logger
from duratask.run_config import run_config
from duratask.settings import Settings
from duratask.store.audit import AuditStore
from duratask.store.definitions import DefinitionStore, NotFound
from workflows import contracts
from workflows.approvals import is_allowed
from workflows.inputs import InputError, resolve_inputs
from workflows.models import (
    CancelRequest,
    ChildRun,
    Intervention,
    Priority,
    PriorityChange,
    RunConfig,
    RunInput,
    RunMeta,
    RunState,
    RunStatus,
    Trigger,
)
from workflows.run_workflow import TaskRunWorkflow

log = get_logger(__name__)

CLOSED_STATUS = {
    WorkflowExecutionStatus.COMPLETED: RunStatus.completed,
    WorkflowExecutionStatus.FAILED: RunStatus.failed,
    WorkflowExecutionStatus.CANCELED: RunStatus.cancelled,
    WorkflowExecutionStatus.TERMINATED: RunStatus.cancelled,
    WorkflowExecutionStatus.TIMED_OUT: RunStatus.failed,
    # an earlier execution of a run that goes on under the same id: not an end
    WorkflowExecutionStatus.CONTINUED_AS_NEW: RunStatus.running,
}
QUERY_TIMEOUT = timedelta(seconds=5)
RUN_TYPE = "TaskRunWorkflow"
# run id -> (is a duratask run, owner, team): fixed at start, so cached per process
_KNOWN: OrderedDict[str, tuple[bool, str | None, str | None]] = OrderedDict()
KNOWN_MAX = 10_000
MAX_TREE_RUNS = 500  # a tree bigger than this is cut off (children listed, not expanded)


def new_run_id() -> str:
    return f"run-{str(ULID()).lower()}"


def idempotent_run_id(identity: str, key: str) -> str:
    digest = hashlib.sha256(f"{identity}\x00{key}".encode()).hexdigest()[:26]
    return f"run-k{digest}"


def _remember(run_id: str, facts: tuple[bool, str | None, str | None]) -> None:
    _KNOWN[run_id] = facts
    _KNOWN.move_to_end(run_id)
    while len(_KNOWN) > KNOWN_MAX:
        _KNOWN.popitem(last=False)


class RunService:
    def __init__(
        self, client: Client, store: DefinitionStore, settings: Settings, principal: Caller
    ) -> None:
        self.client = client
        self.store = store
        self.settings = settings
        self.principal = principal
        self.audit = AuditStore(store.engine)

    # ------------------------------------------------------------ helpers
    def ui_url(self, run_id: str) -> str:
        return f"{self.settings.temporal_ui_url}/namespaces/{self.settings.namespace}/workflows/{run_id}"

    def handle(self, run_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle_for(TaskRunWorkflow.run, run_id)

    def run_config(self) -> RunConfig:
        return run_config(self.settings)

    async def describe(self, run_id: str) -> Any:
        """The run's Temporal description; 404 unless it is a duratask run the caller may
        see: its owner, its team, an admin, an approver of the step it waits at, or (for
        a child run) whoever may see its root run."""
        desc = await self._describe(run_id)
        sa = desc.typed_search_attributes
        approvers = sa.get(contracts.SA_APPROVERS) or []
        if may_see(self.principal, sa.get(contracts.SA_OWNER), sa.get(contracts.SA_TEAM)):
            return desc
        if approvers and is_allowed(approvers, self.principal.identity, self.principal.groups):
            return desc
        await self._root_visible(run_id)
        return desc

    async def _describe(self, run_id: str) -> Any:
        """Temporal's description of `run_id`; 404 if it is unknown or not a duratask run."""
        try:
            desc = await self.handle(run_id).describe()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise not_found(f"run '{run_id}'") from None
            raise map_rpc_error(e) from None
        sa = desc.typed_search_attributes
        ours = desc.workflow_type == RUN_TYPE
        _remember(run_id, (ours, sa.get(contracts.SA_OWNER), sa.get(contracts.SA_TEAM)))
        if not ours:
            raise not_found(f"run '{run_id}'")
        return desc

    async def _root_visible(self, run_id: str) -> None:
        """For a child run (`<root>/<step>...`): pass if the caller may see (and so
        change) its root run; 404 otherwise."""
        root = run_id.split("/", 1)[0]
        if root == run_id:
            raise not_found(f"run '{run_id}'")
        facts = _KNOWN.get(root)
        if facts is None:
            try:
                await self._describe(root)
            except ApiError:
                raise not_found(f"run '{run_id}'") from None
            facts = _KNOWN[root]
        if not (facts[0] and may_see(self.principal, facts[1], facts[2])):
            raise not_found(f"run '{run_id}'")

    async def may_act(self, run_id: str) -> Any:
        """`describe()` for a change: an approver who may only see the run gets 403."""
        desc = await self.describe(run_id)
        sa = desc.typed_search_attributes
        if may_see(self.principal, sa.get(contracts.SA_OWNER), sa.get(contracts.SA_TEAM)):
            return desc
        try:
            await self._root_visible(run_id)
        except ApiError:
            raise ApiError(
                403,
                f"'{self.principal.identity}' may see run '{run_id}' as an approver, but "
                "only its owner, its team or an admin may change it",
            ) from None
        return desc

    async def known(self, run_id: str) -> bool:
        """Whether the caller may see `run_id`, from the cache when it can (no 404)."""
        facts = _KNOWN.get(run_id)
        if facts is not None and facts[0] and may_see(self.principal, facts[1], facts[2]):
            return True
        try:
            await self.describe(run_id)
        except ApiError:
            return False
        return True

    async def _record(self, action: str, run_id: str, desc: Any = None, **detail: Any) -> None:
        sa = desc.typed_search_attributes if desc is not None else None
        owner = sa.get(contracts.SA_OWNER) if sa is not None else detail.pop("owner", None)
        team = sa.get(contracts.SA_TEAM) if sa is not None else detail.pop("team", None)
        await self.audit.record(
            self.principal.identity, action, "run", run_id, owner, team, **detail
        )

    # ------------------------------------------------------------ start
    async def start(
        self,
        req: StartRunRequest,
        identity: str | None = None,
        meta_overrides: dict[str, Any] | None = None,
    ) -> tuple[RunState, bool]:
        """Start a run owned by the caller (another owner needs `tasks:admin`), of a
        definition the caller may see. `identity` is kept for old callers: it is always
        the principal's."""
        identity = self.principal.identity
        try:
            owner, team = resolve_owner(self.principal, req.owner, req.team)
        except AccessDenied as e:
            raise ApiError(e.status, e.message) from None
        try:
            stored = await self.store.get(req.definition_id, req.version)
            if not may_see(self.principal, stored.owner, stored.team):
                raise NotFound(f"definition '{req.definition_id}' not found")
            bundle = await self.store.bundle(req.definition_id, req.version, root=stored)
        except NotFound as e:
            raise ApiError(404, str(e)) from None
        try:
            access.check_child_owners(self.principal, bundle, owner)
        except AccessDenied as e:
            raise ApiError(e.status, e.message) from None
        try:
            inputs = resolve_inputs(bundle.root.definition, req.input)
        except InputError as e:
            raise unprocessable(
                str(e), problems=[{"field": "input", "message": p} for p in e.problems]
            ) from None
        now = datetime.now(UTC)
        delay: timedelta | None = None
        if req.start_at is not None:
            start_at = req.start_at if req.start_at.tzinfo else req.start_at.replace(tzinfo=UTC)
            if start_at <= now:
                raise unprocessable(f"start_at {start_at.isoformat()} is in the past")
            delay = start_at - now
        meta = RunMeta(
            owner=owner,
            team=team,
            priority=req.priority,
            trigger=Trigger(req.trigger),
            idempotency_key=req.idempotency_key,
            created_at=now,
            created_by=identity,
            scheduled_for=now + delay if delay else None,
            source=req.source,
            **(meta_overrides or {}),
        )
        config = self.run_config().model_copy(update={"model_override": req.model})
        inp = RunInput(bundle=bundle, input=inputs, meta=meta, config=config)
        run_id = (
            idempotent_run_id(identity, req.idempotency_key)
            if req.idempotency_key
            else new_run_id()
        )
        state, created = await self.start_input(run_id, inp, delay)
        if created:
            await self._record(
                "run.start", run_id, owner=owner, team=team, definition_id=req.definition_id,
                version=bundle.root.version, priority=req.priority.value,
            )  # fmt: skip
        return state, created

    async def start_input(
        self, run_id: str, inp: RunInput, delay: timedelta | None = None
    ) -> tuple[RunState, bool]:
        meta = inp.meta
        assert inp.bundle is not None, "start_input needs a pinned bundle"
        definition = inp.bundle.root.definition
        status = RunStatus.scheduled if delay else RunStatus.queued
        attrs: list[SearchAttributePair[Any]] = [
            SearchAttributePair(contracts.SA_DEFINITION, definition.id),
            SearchAttributePair(contracts.SA_STATUS, status.value),
            SearchAttributePair(contracts.SA_TRIGGER, meta.trigger.value),
            SearchAttributePair(contracts.SA_PRIORITY, meta.priority.value),
        ]
        for key, value in (
            (contracts.SA_OWNER, meta.owner),
            (contracts.SA_TEAM, meta.team),
            (contracts.SA_SCHEDULE, meta.schedule_id),
            (contracts.SA_PARENT, meta.parent_run_id),
        ):
            if value:
                attrs.append(SearchAttributePair(key, value))
        await self._check_payload_size(inp)
        try:
            await self.client.start_workflow(
                TaskRunWorkflow.run,
                inp,
                id=run_id,
                task_queue=self.settings.task_queue,
                search_attributes=TypedSearchAttributes(attrs),
                start_delay=delay,
                priority=TemporalPriority(priority_key=meta.priority.key, fairness_key=meta.owner),
                static_summary=f"{definition.name or definition.id} v{inp.bundle.root.version}",
                static_details=definition.description,
                memo={MEMO_SOURCE: dict(meta.source)} if meta.source else None,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            log.info("idempotent start: returning existing run", run_id=run_id)
            return await self.get(run_id), False
        except RPCError as e:
            raise map_rpc_error(e) from None
        _remember(run_id, (True, meta.owner, meta.team))  # its result needs no describe
        log.info("run started", run_id=run_id, definition=definition.id, status=status.value)
        note(run_id=run_id, definition=definition.id)  # on this request's log line
        state = state_from_input(run_id, inp)
        state.status = status
        state.temporal_ui_url = self.ui_url(run_id)
        return state, True

    async def _check_payload_size(self, inp: RunInput) -> None:
        """Refuse (413) a run whose input would pass Temporal's payload limit, which
        otherwise fails in gRPC as an opaque 502."""
        limit = self.settings.temporal_payload_limit_bytes
        try:
            (payload,) = await self.client.data_converter.encode([inp])
        except (ValueError, TypeError, RecursionError) as e:  # e.g. input nested too deeply
            raise unprocessable(f"the run's input cannot be encoded: {e}") from None
        size = payload.ByteSize()
        if size > limit:
            raise ApiError(
                413,
                f"the run's input and definition come to {size:,} bytes, over Temporal's "
                f"payload limit of {limit:,} bytes: pass large data by reference (a URL)",
            )

    # ------------------------------------------------------------ read
    async def get(self, run_id: str) -> RunState:
        desc = await self.describe(run_id)
        handle = self.handle(run_id)
        state: RunState | None = None
        if desc.status == WorkflowExecutionStatus.RUNNING:
            sa_status = desc.typed_search_attributes.get(contracts.SA_STATUS)
            if sa_status not in (RunStatus.queued.value, RunStatus.scheduled.value):
                state = await self._query(handle)
            if state is None:
                state = state_from_input(run_id, await start_input(self.client, handle))
                state.status = RunStatus(sa_status or RunStatus.queued.value)
        elif desc.status == WorkflowExecutionStatus.COMPLETED:
            state = await handle.result()
        elif desc.status == WorkflowExecutionStatus.FAILED:
            state = await self._failed_state(handle)
        if state is None:  # cancelled / terminated / timed out / no worker to query
            state = (
                await self._query(handle)
                if desc.status == WorkflowExecutionStatus.CANCELED
                else None
            )
            if state is None:
                state = state_from_input(run_id, await start_input(self.client, handle))
                state.status = CLOSED_STATUS.get(desc.status, RunStatus.running)
                state.completed_at = desc.close_time
                if desc.status == WorkflowExecutionStatus.TERMINATED:
                    state.error = _error("TERMINATED", "the run was terminated in Temporal")
        state.temporal_ui_url = self.ui_url(run_id)
        return state

    # ------------------------------------------------------------ children and trees
    async def get_with_children(self, run_id: str) -> RunState:
        """The run, with the live status of each child it has not yet seen end."""
        state = await self.get(run_id)
        open_children = [c for c in state.children if not c.status.terminal]
        statuses = await asyncio.gather(*(self._child_status(c.run_id) for c in open_children))
        for child, status in zip(open_children, statuses, strict=True):
            child.status = status or child.status
        return state

    async def _child_status(self, run_id: str) -> RunStatus | None:
        try:
            desc = await self.handle(run_id).describe()
        except RPCError:
            return None
        if desc.status == WorkflowExecutionStatus.RUNNING:
            return RunStatus(desc.typed_search_attributes.get(contracts.SA_STATUS) or "running")
        return CLOSED_STATUS.get(desc.status) if desc.status else None

    async def tree(self, run_id: str) -> RunTree:
        """The run and every descendant, recursively, for a DAG view."""
        return await self._tree_node(await self.get_with_children(run_id), None, [MAX_TREE_RUNS])

    async def _tree_node(self, state: RunState, branch: str | None, budget: list[int]) -> RunTree:
        async def expand(child: ChildRun) -> RunTree:
            budget[0] -= 1
            child_state = await self._state_or_none(child.run_id) if budget[0] > 0 else None
            if child_state is None:  # not started yet, gone from Temporal, or over budget
                return RunTree(
                    run_id=child.run_id,
                    definition_id=child.definition_id,
                    definition_version=0,
                    status=child.status.value,
                    parent_run_id=state.run_id,
                    branch=child.branch,
                )
            return await self._tree_node(child_state, child.branch, budget)

        expanded = await asyncio.gather(*(expand(c) for c in state.children))
        nodes = {node.run_id: node for node in expanded}
        return RunTree(
            run_id=state.run_id,
            definition_id=state.definition_id,
            definition_version=state.definition_version,
            status=state.status.value,
            parent_run_id=state.parent_run_id,
            branch=branch,
            current_step=state.current_step,
            percent=state.progress.percent,
            usage=state.usage.model_dump(),
            error=state.error.model_dump() if state.error else None,
            started_at=state.started_at,
            completed_at=state.completed_at,
            temporal_ui_url=self.ui_url(state.run_id),
            steps=[
                RunTreeStep(
                    id=s.id,
                    action=s.action,
                    label=s.label,
                    status=s.status.value,
                    children=[nodes[c] for c in s.children if c in nodes],
                )
                for s in state.steps
            ],
        )

    async def _state_or_none(self, run_id: str) -> RunState | None:
        try:
            return await self.get_with_children(run_id)
        except ApiError:
            return None

    async def _query(self, handle: WorkflowHandle[Any, Any]) -> RunState | None:
        try:
            return await handle.query(TaskRunWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
        except (TimeoutError, RPCError) as e:
            log.info("state query failed; using history", run_id=handle.id, error=str(e))
            return None

    async def _failed_state(self, handle: WorkflowHandle[Any, Any]) -> RunState | None:
        return await self._outcome(handle.id)

    async def result(self, run_id: str, wait: float) -> tuple[RunState, bool]:
        """The run's state once it ends, waiting up to `wait` seconds for that."""
        # a run this gateway started or has described is waited for at once: a describe
        # first (may the caller see it, does it still run) costs a round trip per result
        facts = _KNOWN.get(run_id)
        known = facts is not None and facts[0] and may_see(self.principal, facts[1], facts[2])
        if wait > 0 and (
            known or (await self.describe(run_id)).status == WorkflowExecutionStatus.RUNNING
        ):
            try:
                state = await asyncio.wait_for(self._outcome(run_id), wait)
            except (TimeoutError, RPCError):  # still running; or gone: get() says which
                state = None
            if state is not None:
                state.temporal_ui_url = self.ui_url(run_id)
                return state, True
        state = await self.get(run_id)
        return state, state.status.terminal

    async def _outcome(self, run_id: str) -> RunState | None:
        """Wait for the end; the final state when the result or failure carries it."""
        handle = self.handle(run_id)
        try:
            return await handle.result()  # type: ignore[no-any-return]
        except WorkflowFailureError as e:
            cause = e.cause
            if isinstance(cause, ApplicationError) and cause.details:
                return RunState.model_validate(cause.details[0])
            return None  # cancelled / terminated: read it the slow way

    async def search(
        self,
        definition_id: str | None,
        status: str | None,
        owner: str | None,
        trigger: str | None,
        parent: str | None,
        page_size: int,
        page_token: str | None,
        started_after: datetime | None = None,
    ) -> tuple[list[RunSummary], str | None]:
        # one row per run: a run that continued as new leaves closed executions behind
        # under the same id, with the status they had then (docs/runs.md#long-runs)
        clauses = [f"WorkflowType = '{RUN_TYPE}' AND ExecutionStatus != 'ContinuedAsNew'"]
        visible = access.visibility_clause(self.principal)
        if visible:
            clauses.append(visible)
        if started_after is not None:  # the console's time filter
            at = started_after if started_after.tzinfo else started_after.replace(tzinfo=UTC)
            clauses.append(f"StartTime >= '{at.astimezone(UTC).isoformat()}'")
        for key, value in (
            (contracts.SA_DEFINITION, definition_id),
            (contracts.SA_STATUS, status),
            (contracts.SA_OWNER, owner),
            (contracts.SA_TRIGGER, trigger),
            (contracts.SA_PARENT, parent),
        ):
            if value:
                clauses.append(f"{key.name} = {_quote(value)}")
        token = decode_page_token(page_token)
        iterator = self.client.list_workflows(
            " AND ".join(clauses), page_size=page_size, next_page_token=token
        )
        try:
            await iterator.fetch_next_page()
        except RPCError as e:
            raise map_rpc_error(e) from None
        items = [await self._summary(w) for w in iterator.current_page or []]
        next_token = iterator.next_page_token
        return items, encode_page_token(next_token)

    async def _summary(self, w: WorkflowExecution) -> RunSummary:
        sa = w.typed_search_attributes
        status = sa.get(contracts.SA_STATUS) or "queued"
        if w.status is not None and w.status != WorkflowExecutionStatus.RUNNING:
            status = CLOSED_STATUS.get(w.status, RunStatus.failed).value
        trigger = sa.get(contracts.SA_TRIGGER)
        return RunSummary(
            run_id=w.id,
            definition_id=sa.get(contracts.SA_DEFINITION),
            status=status,
            owner=sa.get(contracts.SA_OWNER),
            team=sa.get(contracts.SA_TEAM),
            trigger=trigger,
            priority=sa.get(contracts.SA_PRIORITY),
            proactive=trigger == Trigger.schedule.value,
            parent_run_id=sa.get(contracts.SA_PARENT),
            start_time=w.start_time,
            close_time=w.close_time,
            temporal_ui_url=self.ui_url(w.id),
            source=await _memo_source(w),
        )

    # ------------------------------------------------------------ change
    async def _require_running(self, run_id: str, action: str) -> Any:
        desc = await self.may_act(run_id)
        if desc.status != WorkflowExecutionStatus.RUNNING:
            status = CLOSED_STATUS.get(desc.status, RunStatus.failed).value
            raise conflict(f"cannot {action}: run '{run_id}' is {status}", run_status=status)
        return desc

    async def cancel(self, run_id: str, reason: str, by: str | None = None) -> None:
        by = self.principal.identity
        desc = await self._require_running(run_id, "cancel")
        handle = self.handle(run_id)
        await handle.signal(
            TaskRunWorkflow.request_cancel, CancelRequest(reason=reason, requested_by=by)
        )
        await handle.cancel(reason=reason)
        await self._record("run.cancel", run_id, desc, reason=reason or None)
        log.info("run cancel requested", run_id=run_id, reason=reason, by=by)

    async def bulk_cancel(
        self, run_ids: list[str], reason: str, by: str | None = None
    ) -> list[dict[str, Any]]:
        async def one(run_id: str) -> dict[str, Any]:
            try:
                await self.cancel(run_id, reason, by)
                return {"run_id": run_id, "ok": True, "status": "cancelling"}
            except ApiError as e:
                return {"run_id": run_id, "ok": False, "status_code": e.status, "detail": e.detail}

        return list(await asyncio.gather(*(one(r) for r in run_ids)))

    async def set_priority(self, run_id: str, priority: Priority) -> None:
        desc = await self._require_running(run_id, "change priority")
        await self.handle(run_id).signal(
            TaskRunWorkflow.set_priority,
            PriorityChange(priority=priority, by=self.principal.identity),
        )
        await self._record("run.priority", run_id, desc, priority=priority.value)

    async def message(self, run_id: str, msg: Intervention) -> None:
        """Steer / collect / followup, sent as the caller (whatever `msg.sender` says)."""
        desc = await self._require_running(run_id, f"send a {msg.mode} message")
        msg = msg.model_copy(update={"sender": self.principal.identity})
        await self.handle(run_id).signal(TaskRunWorkflow.intervene, msg)
        await self._record(f"run.{msg.mode}", run_id, desc, message=msg.message[:200])

    async def retry(
        self, run_id: str, new_input: dict[str, Any] | None, by: str | None = None
    ) -> RunState:
        """A new run with the old one's pinned definition (and input, unless given). It
        keeps the old owner and team: only they (or an admin) may retry."""
        by = self.principal.identity
        desc = await self.may_act(run_id)
        if desc.status == WorkflowExecutionStatus.RUNNING:
            raise conflict(f"cannot retry: run '{run_id}' is still running", run_status="running")
        old = await start_input(self.client, self.handle(run_id))
        if old.bundle is None:  # a scheduled run that followed the latest version
            bundle = await self.store.bundle(old.definition_id or "", old.version)
            old = old.model_copy(update={"bundle": bundle})
        assert old.bundle is not None
        inputs = old.input if new_input is None else new_input
        try:
            inputs = resolve_inputs(old.bundle.root.definition, inputs)
        except InputError as e:
            raise unprocessable(str(e)) from None
        meta = old.meta.model_copy(
            update={
                "retry_of": run_id,
                "retry_count": old.meta.retry_count + 1,
                "trigger": Trigger.retry,
                "created_at": datetime.now(UTC),
                "created_by": by,
                "idempotency_key": None,
                "scheduled_for": None,
            }
        )
        inp = old.model_copy(update={"input": inputs, "meta": meta, "carry": None})
        state, _ = await self.start_input(new_run_id(), inp)
        await self._record("run.retry", run_id, desc, new_run_id=state.run_id)
        return state


_quote = access.quote


def _error(code: str, message: str) -> Any:
    from workflows.models import RunError

    return RunError(code=code, message=message)


MEMO_SOURCE = "source"  # the run's `source`, in its memo so that run lists can show it


async def _memo_source(w: WorkflowExecution) -> dict[str, str]:
    try:
        value = await w.memo_value(MEMO_SOURCE, {})
    except Exception:  # an unreadable memo (another codec) leaves the list readable
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
