"""Run operations, shared by the runs router and anything else that starts runs.

Runs live only in Temporal: starting one is `start_workflow` with the pinned bundle;
reading one is a query while it runs, its result or failure details once closed;
listing is a visibility query over duratask's search attributes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
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
from api.schemas import RunSummary, RunTree, RunTreeStep, StartRunRequest
from duratask.logging import get_logger
from duratask.settings import Settings
from duratask.store.definitions import DefinitionStore, NotFound
from workflows import contracts
from workflows.definition import ModelSpec
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
}
QUERY_TIMEOUT = timedelta(seconds=5)
MAX_TREE_RUNS = 500  # a tree bigger than this is cut off (children listed, not expanded)


def new_run_id() -> str:
    return f"run-{str(ULID()).lower()}"


def idempotent_run_id(identity: str, key: str) -> str:
    digest = hashlib.sha256(f"{identity}\x00{key}".encode()).hexdigest()[:26]
    return f"run-k{digest}"


class RunService:
    def __init__(self, client: Client, store: DefinitionStore, settings: Settings) -> None:
        self.client = client
        self.store = store
        self.settings = settings

    # ------------------------------------------------------------ helpers
    def ui_url(self, run_id: str) -> str:
        return f"{self.settings.temporal_ui_url}/namespaces/{self.settings.namespace}/workflows/{run_id}"

    def handle(self, run_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle_for(TaskRunWorkflow.run, run_id)

    def run_config(self) -> RunConfig:
        s = self.settings
        return RunConfig(
            default_model=ModelSpec(provider=s.model_provider, name=s.model_name),
            max_output_bytes=s.max_output_bytes,
            max_subtask_depth=s.max_subtask_depth,
            continue_as_new_after_turns=s.agent_continue_as_new_after_turns,
            drift_after_turns=s.agent_drift_after_turns,
        )

    async def describe(self, run_id: str) -> Any:
        try:
            return await self.handle(run_id).describe()
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                raise not_found(f"run '{run_id}'") from None
            raise map_rpc_error(e) from None

    # ------------------------------------------------------------ start
    async def start(
        self, req: StartRunRequest, identity: str, meta_overrides: dict[str, Any] | None = None
    ) -> tuple[RunState, bool]:
        try:
            bundle = await self.store.bundle(req.definition_id, req.version)
        except NotFound as e:
            raise ApiError(404, str(e)) from None
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
            owner=req.owner,
            priority=req.priority,
            trigger=Trigger(req.trigger),
            idempotency_key=req.idempotency_key,
            created_at=now,
            created_by=identity,
            scheduled_for=now + delay if delay else None,
            source=req.source,
            **(meta_overrides or {}),
        )
        inp = RunInput(bundle=bundle, input=inputs, meta=meta, config=self.run_config())
        run_id = (
            idempotent_run_id(identity, req.idempotency_key)
            if req.idempotency_key
            else new_run_id()
        )
        return await self.start_input(run_id, inp, delay)

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
            (contracts.SA_SCHEDULE, meta.schedule_id),
            (contracts.SA_PARENT, meta.parent_run_id),
        ):
            if value:
                attrs.append(SearchAttributePair(key, value))
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
        log.info("run started", run_id=run_id, definition=definition.id, status=status.value)
        note(run_id=run_id, definition=definition.id)  # on this request's log line
        state = state_from_input(run_id, inp)
        state.status = status
        state.temporal_ui_url = self.ui_url(run_id)
        return state, True

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
        desc = await self.describe(run_id)
        if desc.status == WorkflowExecutionStatus.RUNNING and wait > 0:
            try:
                state = await asyncio.wait_for(self._outcome(run_id), wait)
            except TimeoutError:
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
    ) -> tuple[list[RunSummary], str | None]:
        clauses = ["WorkflowType = 'TaskRunWorkflow'"]
        for key, value in (
            (contracts.SA_DEFINITION, definition_id),
            (contracts.SA_STATUS, status),
            (contracts.SA_OWNER, owner),
            (contracts.SA_TRIGGER, trigger),
            (contracts.SA_PARENT, parent),
        ):
            if value:
                clauses.append(f"{key.name} = {_quote(value)}")
        token = base64.urlsafe_b64decode(page_token) if page_token else None
        iterator = self.client.list_workflows(
            " AND ".join(clauses), page_size=page_size, next_page_token=token
        )
        try:
            await iterator.fetch_next_page()
        except RPCError as e:
            raise map_rpc_error(e) from None
        items = [await self._summary(w) for w in iterator.current_page or []]
        next_token = iterator.next_page_token
        return items, base64.urlsafe_b64encode(next_token).decode() if next_token else None

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
        desc = await self.describe(run_id)
        if desc.status != WorkflowExecutionStatus.RUNNING:
            status = CLOSED_STATUS.get(desc.status, RunStatus.failed).value
            raise conflict(f"cannot {action}: run '{run_id}' is {status}", run_status=status)
        return desc

    async def cancel(self, run_id: str, reason: str, by: str) -> None:
        await self._require_running(run_id, "cancel")
        handle = self.handle(run_id)
        await handle.signal(
            TaskRunWorkflow.request_cancel, CancelRequest(reason=reason, requested_by=by)
        )
        await handle.cancel(reason=reason)
        log.info("run cancel requested", run_id=run_id, reason=reason, by=by)

    async def bulk_cancel(self, run_ids: list[str], reason: str, by: str) -> list[dict[str, Any]]:
        async def one(run_id: str) -> dict[str, Any]:
            try:
                await self.cancel(run_id, reason, by)
                return {"run_id": run_id, "ok": True, "status": "cancelling"}
            except ApiError as e:
                return {"run_id": run_id, "ok": False, "status_code": e.status, "detail": e.detail}

        return list(await asyncio.gather(*(one(r) for r in run_ids)))

    async def set_priority(self, run_id: str, priority: Priority) -> None:
        await self._require_running(run_id, "change priority")
        await self.handle(run_id).signal(
            TaskRunWorkflow.set_priority, PriorityChange(priority=priority)
        )

    async def message(self, run_id: str, msg: Intervention) -> None:
        await self._require_running(run_id, f"send a {msg.mode} message")
        await self.handle(run_id).signal(TaskRunWorkflow.intervene, msg)

    async def retry(self, run_id: str, new_input: dict[str, Any] | None, by: str) -> RunState:
        desc = await self.describe(run_id)
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
        return state


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
