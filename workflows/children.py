"""`sub_task` and `parallel` steps: every child is its own TaskRunWorkflow.

Why child workflows: each sub-task and each branch is then durable on its own, visible
in the Temporal UI under its parent, and, through `parent_close_policy=REQUEST_CANCEL`,
never outlives its parent. Child ids are derived from the parent's id and the step id
(`<parent>/<step>` and `<parent>/<step>/<branch>`), so a replay or a workflow-task retry
of the parent can never start a second child. The parent forwards the reason of a cancel
to its running children before the cancel itself reaches them, so the whole tree ends
`cancelled` with the same reason.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import Priority as TemporalPriority
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError, ChildWorkflowError, TerminatedError
from temporalio.exceptions import CancelledError as ChildCancelled

from workflows import contracts
from workflows.definition import (
    ID_PATTERN,
    Branch,
    InputSpec,
    ParallelStep,
    SubTaskStep,
    TaskDefinition,
)
from workflows.errors import StepFailure, fail
from workflows.events import EventType
from workflows.inputs import InputError, resolve_inputs
from workflows.models import (
    BundledDefinition,
    CancelRequest,
    ChildRun,
    DefinitionBundle,
    Priority,
    RunError,
    RunInput,
    RunMeta,
    RunState,
    RunStatus,
    Trigger,
    pending_bundle,
)
from workflows.templates import render_value

if TYPE_CHECKING:
    from workflows.host import RunHost

# a cancelled run's children get its reason with the cancel itself (Children._result)
PATCH_CANCEL_REASON_TO_CHILDREN = "cancel-reason-to-children"
_SLUG = re.compile(r"[^a-z0-9-]+")
_STEP_REF = re.compile(r"steps\s*(?:\.\s*|\[\s*[\"'])([A-Za-z_][A-Za-z0-9_-]*)")


@dataclass
class _Spec:
    """One child to start: where its result goes and what it runs with."""

    key: str | int | None  # branch name or index; None for a sub_task
    label: str  # "sub-task 'review'" / "branch 'security'": used in messages
    run_id: str
    inp: RunInput
    child: ChildRun | None = None  # registered on the step when the step starts


@dataclass
class _Outcome:
    spec: _Spec
    state: RunState | None = None
    error: RunError | None = None
    cancelled: bool = False


class Children:
    def __init__(self, wf: RunHost) -> None:
        self.wf = wf
        self.running: dict[str, workflow.ChildWorkflowHandle[Any, RunState]] = {}
        self.stopping: set[str] = set()  # children this run cancels itself (fail_fast)

    async def run(self, step: SubTaskStep | ParallelStep) -> tuple[Any, bool, str | None]:
        if isinstance(step, SubTaskStep):
            return await self._sub_task(step)
        return await self._parallel(step)

    def forward_cancel(self, req: CancelRequest) -> None:
        """Pass a cancel's reason to every running child (called from the signal)."""
        for handle in list(self.running.values()):
            asyncio.create_task(self._signal_cancel(handle, req))

    async def _result(self, handle: workflow.ChildWorkflowHandle[Any, RunState]) -> RunState:
        """The child's final state. When this run is cancelled, the child's cancel request
        carries the reason: the signal that also carries it (`forward_cancel`) and the
        cancel are delivered separately, and a child that got the cancel first would end
        with no reason ("cancelled") while the rest of the tree says why."""
        if not workflow.patched(PATCH_CANCEL_REASON_TO_CHILDREN):
            return await handle
        try:
            return await asyncio.shield(handle)
        except asyncio.CancelledError as e:
            state = self.wf.tracker.state
            reason = _cancel_message(e) or state.cancel_reason or workflow.cancellation_reason()
            handle.cancel(reason or None)  # the SDK's cancel command takes the message
            return await handle

    # ------------------------------------------------------------ sub_task
    async def _sub_task(self, step: SubTaskStep) -> tuple[Any, bool, str | None]:
        self._check_depth(step.id, f"sub-task '{step.task}'")
        run_id = self._base_id(step.id)
        inp = self._referenced_input(step.id, step.task, step.version, step.input)
        inp.meta = self._meta(step.id, step.owner, step.priority)
        spec = self._register(step.id, _Spec(None, f"sub-task '{step.task}'", run_id, inp))
        tracker = self.wf.tracker
        tracker.set_status(RunStatus.awaiting_subtask)
        outcome = await self._run_child(step.id, spec)
        self._resume()
        if outcome.error is not None:
            raise StepFailure(outcome.error)
        assert outcome.state is not None
        return outcome.state.result, False, None

    # ------------------------------------------------------------ parallel
    async def _parallel(self, step: ParallelStep) -> tuple[Any, bool, str | None]:
        self._check_depth(step.id, f"the branches of '{step.id}'")
        specs = [self._branch_spec(step, i, b) for i, b in enumerate(step.branches)]
        ids = [spec.run_id for spec in specs]
        if len(set(ids)) != len(ids):
            dup = next(str(spec.key) for spec in specs if ids.count(spec.run_id) > 1)
            raise fail(
                contracts.E_STEP_FAILED,
                f"two branches of '{step.id}' would share the child id suffix '{dup}':"
                " give every branch a unique name",
                step.id,
            )
        specs = [self._register(step.id, spec) for spec in specs]  # branch order, all queued
        gate = asyncio.Semaphore(step.max_concurrency or len(specs))

        async def one(spec: _Spec) -> _Outcome:
            try:
                async with gate:
                    return await self._run_child(step.id, spec)
            except asyncio.CancelledError:
                assert spec.child is not None
                if spec.child.status == RunStatus.queued:  # never started
                    spec.child.status = RunStatus.cancelled
                raise

        tasks = [asyncio.create_task(one(s)) for s in specs]
        self.wf.tracker.set_status(RunStatus.awaiting_parallel)
        try:
            outcomes = await self._collect(step, specs, tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        self._resume()
        return self._merge(step, outcomes), False, None

    async def _collect(
        self, step: ParallelStep, specs: list[_Spec], tasks: list[asyncio.Task[_Outcome]]
    ) -> list[_Outcome]:
        pending = list(tasks)
        while pending:
            done, pending = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            # iterate in branch order, never in set order: replay must see the same commands
            failed = [t for t in tasks if t in done and t.result().error is not None]
            if failed and step.on_failure == "fail_fast" and pending:
                first = failed[0].result()
                reason = f"{first.spec.label} of step '{step.id}' failed (fail_fast)"
                await self._cancel_tasks([t for t in tasks if t in pending], specs, tasks, reason)
                break
        outcomes: list[_Outcome] = []
        for spec, task in zip(specs, tasks, strict=True):
            if task.cancelled() or not task.done():
                outcomes.append(_Outcome(spec, cancelled=True))
            else:
                outcomes.append(task.result())
        return outcomes

    async def _cancel_tasks(
        self,
        victims: list[asyncio.Task[_Outcome]],
        specs: list[_Spec],
        tasks: list[asyncio.Task[_Outcome]],
        reason: str,
    ) -> None:
        req = CancelRequest(reason=reason, requested_by=self.wf.tracker.state.run_id)
        by_task = dict(zip(tasks, specs, strict=True))
        self.stopping.update(by_task[t].run_id for t in victims)
        handles = [
            self.running[by_task[t].run_id] for t in victims if by_task[t].run_id in self.running
        ]
        await asyncio.gather(*(self._signal_cancel(h, req) for h in handles))
        for task in victims:
            task.cancel()
        await asyncio.gather(*victims, return_exceptions=True)

    def _merge(self, step: ParallelStep, outcomes: list[_Outcome]) -> Any:
        named = all(b.name for b in step.branches)
        failures = [o for o in outcomes if o.error is not None]
        if failures and step.on_failure == "fail_fast":
            first = failures[0]
            assert first.error is not None
            cancelled = sum(1 for o in outcomes if o.cancelled)
            err = first.error.model_copy(deep=True)
            err.step_id = step.id
            err.message += f" ({cancelled} other branch(es) cancelled)" if cancelled else ""
            err.details["branches"] = {str(o.spec.key): _status(o) for o in outcomes}
            raise StepFailure(err)

        def value(o: _Outcome) -> Any:
            return o.state.result if o.state is not None else None

        results: Any = (
            {str(o.spec.key): value(o) for o in outcomes} if named else [value(o) for o in outcomes]
        )
        if step.on_failure == "fail_fast":
            return results
        errors = {
            str(o.spec.key): {
                "code": o.error.code,
                "message": o.error.message,
                "run_id": o.spec.run_id,
            }
            for o in outcomes
            if o.error is not None
        }
        return {"results": results, "errors": errors, "ok": not errors}

    def _branch_spec(self, step: ParallelStep, i: int, branch: Branch) -> _Spec:
        key: str | int = branch.name or i
        suffix = str(key).replace("/", "-")
        run_id = f"{self._base_id(step.id)}/{suffix}"
        label = f"branch '{key}'"
        if branch.task is not None:
            inp = self._referenced_input(step.id, branch.task, branch.version, branch.input)
        else:
            inp = self._inline_input(step, i, branch)
        inp.meta = self._meta(step.id, None, None)
        return _Spec(key, label, run_id, inp)

    def _inline_input(self, step: ParallelStep, i: int, branch: Branch) -> RunInput:
        """Inline steps run as a child with a derived definition; they see the parent's
        inputs overlaid with the branch's own (templated) `input`, and the outputs of
        the parent's steps they refer to."""
        parent = self.wf.definition
        rendered = render_value(branch.input, self.wf.namespace())
        given = {**self.wf.tracker.state.input, **rendered}
        slug = _SLUG.sub("-", f"{parent.id}--{step.id}-{i}".lower()).strip("-")[:63]
        assert re.match(ID_PATTERN, slug)
        definition = TaskDefinition(
            id=slug,
            name=f"{parent.name or parent.id} / {step.id} / {branch.name or i}",
            inputs={k: InputSpec(type="any") for k in given},
            model=parent.model,
            tools=parent.tools,
            limits=parent.limits,
            steps=branch.steps or [],
        )
        root = self.wf.bundle.root
        bundled = BundledDefinition(definition=definition, version=root.version)
        text = json.dumps([s.model_dump(mode="json") for s in definition.steps])
        used = set(_STEP_REF.findall(text))
        return RunInput(
            bundle=self._bundle_for(bundled),
            input=given,
            config=self.wf.inp.config,
            parent_outputs={k: v for k, v in self.wf.outputs.items() if k in used},
        )

    # ------------------------------------------------------------ building a child
    def _check_depth(self, step_id: str, what: str) -> None:
        depth = self.wf.inp.meta.depth
        limit = self.wf.inp.config.max_subtask_depth
        if depth + 1 > limit:
            raise fail(
                contracts.E_SUBTASK_DEPTH,
                f"cannot start {what}: this run is already at sub-task depth {depth} and the"
                f" limit is max_subtask_depth={limit} (check for runaway nesting)",
                step_id,
                depth=depth,
                max_subtask_depth=limit,
            )

    def _base_id(self, step_id: str) -> str:
        n = self.wf.executions.get(step_id, 1)
        base = f"{self.wf.tracker.state.run_id}/{step_id}"
        return base if n <= 1 else f"{base}.{n}"

    def _referenced_input(
        self, step_id: str, task: str, version: int | None, raw: dict[str, Any]
    ) -> RunInput:
        bundle = self.wf.bundle
        ref = bundle.get(task)
        if ref is None:
            raise fail(
                contracts.E_STEP_FAILED,
                f"definition '{task}' is not in this run's bundle (was it saved before the run?)",
                step_id,
            )
        if version is not None and ref.version != version:
            raise fail(
                contracts.E_STEP_FAILED,
                f"definition '{task}' is pinned at v{ref.version}, the step asks for v{version}",
                step_id,
            )
        rendered = render_value(raw, self.wf.namespace())
        try:
            inputs = resolve_inputs(ref.definition, rendered)
        except InputError as e:
            raise fail(
                contracts.E_INVALID_INPUT, f"input for '{task}' is invalid: {e}", step_id
            ) from None
        return RunInput(bundle=self._bundle_for(ref), input=inputs, config=self.wf.inp.config)

    def _bundle_for(self, root: BundledDefinition) -> DefinitionBundle:
        """The child's bundle: its definition as root, everything else pinned as before."""
        parent = self.wf.bundle
        others = {parent.root.definition.id: parent.root, **parent.others}
        others.pop(root.definition.id, None)
        return DefinitionBundle(root=root, others=others)

    def _meta(self, step_id: str, owner: str | None, priority: str | None) -> RunMeta:
        parent = self.wf.inp.meta
        try:
            prio = Priority(priority) if priority else self.wf.priority
        except ValueError:
            choices = ", ".join(p.value for p in Priority)
            raise fail(
                contracts.E_STEP_FAILED,
                f"priority {priority!r} is not one of: {choices}",
                step_id,
            ) from None
        return RunMeta(
            owner=owner or self.wf.tracker.state.owner,
            team=parent.team,
            priority=prio,
            trigger=Trigger.subtask,
            parent_run_id=self.wf.tracker.state.run_id,
            parent_step_id=step_id,
            depth=parent.depth + 1,
            created_at=workflow.now(),
            created_by=parent.created_by,
            source=parent.source,
        )

    # ------------------------------------------------------------ running a child
    def _register(self, step_id: str, spec: _Spec) -> _Spec:
        """List the child on the run and its step (queued) before anything starts."""
        spec.child = ChildRun(
            run_id=spec.run_id,
            step_id=step_id,
            definition_id=pending_bundle(spec.inp).root.definition.id,
            branch=None if spec.key is None else str(spec.key),
            status=RunStatus.queued,
        )
        self.wf.tracker.state.children.append(spec.child)
        self.wf.tracker.step(step_id).children.append(spec.run_id)
        return spec

    async def _run_child(self, step_id: str, spec: _Spec) -> _Outcome:
        t = self.wf.tracker
        child = spec.child
        assert child is not None
        outcome = _Outcome(spec)
        try:
            handle = await self._start(spec)
        except asyncio.CancelledError:
            child.status = RunStatus.cancelled
            raise
        except Exception as e:  # e.g. the id is taken by a run that is still open
            if spec.run_id in self.stopping or _cancel_pending():  # cancelled while starting
                child.status = RunStatus.cancelled
                raise asyncio.CancelledError(str(e)) from None
            child.status = RunStatus.failed
            child.error = outcome.error = RunError(
                code=contracts.E_STEP_FAILED,
                message=f"could not start {spec.label} as {spec.run_id}: {e}",
                step_id=step_id,
                details={"child_run_id": spec.run_id},
            )
            self._ended(step_id, spec, child)
            return outcome
        child.status = RunStatus.running
        t.emit(
            EventType.CHILD_STARTED,
            step_id,
            f"{spec.label} started as {spec.run_id}",
            run_id=spec.run_id,
            definition_id=child.definition_id,
            branch=child.branch,
        )
        self.running[spec.run_id] = handle
        t.refresh_details()
        try:
            outcome.state = await self._result(handle)
            child.status = RunStatus.completed
            if _cancel_pending():  # it finished as our cancel went out: still honour the cancel
                self._roll_up(step_id, outcome.state)
                self._ended(step_id, spec, child)
                raise asyncio.CancelledError("cancelled while the child completed")
        except asyncio.CancelledError:
            child.status = RunStatus.cancelled
            outcome.cancelled = True
            self._ended(step_id, spec, child)
            raise
        except ChildWorkflowError as e:
            if isinstance(e.cause, ChildCancelled) and (
                spec.run_id in self.stopping or _cancel_pending()
            ):  # this run (or this branch) is being cancelled: not a failure
                child.status = RunStatus.cancelled
                outcome.cancelled = True
                self._ended(step_id, spec, child)
                raise asyncio.CancelledError(str(e.cause)) from None
            outcome.state, outcome.error = _child_failure(e, spec, step_id)
            child.status = (
                RunStatus.cancelled
                if outcome.error.code == contracts.E_CANCELLED
                else RunStatus.failed
            )
            child.error = outcome.error
        self._roll_up(step_id, outcome.state)
        self._ended(step_id, spec, child)
        return outcome

    def _roll_up(self, step_id: str, state: RunState | None) -> None:
        """A child's usage and cost count towards its step and this run."""
        if state is not None:
            self.wf.tracker.step(step_id).usage.add(state.usage)
            self.wf.tracker.state.usage.add(state.usage)

    async def _start(self, spec: _Spec) -> workflow.ChildWorkflowHandle[Any, RunState]:
        meta = spec.inp.meta
        root = pending_bundle(spec.inp).root
        attrs: list[SearchAttributePair[Any]] = [
            SearchAttributePair(contracts.SA_DEFINITION, root.definition.id),
            SearchAttributePair(contracts.SA_STATUS, RunStatus.queued.value),
            SearchAttributePair(contracts.SA_TRIGGER, Trigger.subtask.value),
            SearchAttributePair(contracts.SA_PRIORITY, meta.priority.value),
            SearchAttributePair(contracts.SA_PARENT, self.wf.tracker.state.run_id),
        ]
        if meta.owner:
            attrs.append(SearchAttributePair(contracts.SA_OWNER, meta.owner))
        if meta.team:  # only runs started with a team (none before teams existed)
            attrs.append(SearchAttributePair(contracts.SA_TEAM, meta.team))
        return await workflow.start_child_workflow(
            type(self.wf).run,
            spec.inp,
            id=spec.run_id,
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
            search_attributes=TypedSearchAttributes(attrs),
            static_summary=f"{spec.label}: {root.definition.name or root.definition.id}"
            f" v{root.version}"[:200],
            static_details=root.definition.description,
            priority=TemporalPriority(priority_key=meta.priority.key, fairness_key=meta.owner),
        )

    def _ended(self, step_id: str, spec: _Spec, child: ChildRun) -> None:
        self.running.pop(spec.run_id, None)
        self.wf.tracker.refresh_details()
        self.wf.tracker.emit(
            EventType.CHILD_COMPLETED,
            step_id,
            f"{spec.label} ({spec.run_id}) {child.status.value}",
            run_id=spec.run_id,
            status=child.status.value,
        )

    def _resume(self) -> None:
        if not self.wf.tracker.state.status.terminal:
            self.wf.tracker.set_status(RunStatus.running)

    async def _signal_cancel(
        self, handle: workflow.ChildWorkflowHandle[Any, RunState], req: CancelRequest
    ) -> None:
        try:
            await handle.signal(type(self.wf).request_cancel, req)
        except Exception:  # the child may already have ended: nothing to tell it
            workflow.logger.info("could not forward cancel to %s", handle.id)


def _child_failure(
    e: ChildWorkflowError, spec: _Spec, step_id: str
) -> tuple[RunState | None, RunError]:
    """The child's own error (and its final state, for usage) from a failed child."""
    cause = e.cause
    state: RunState | None = None
    if isinstance(cause, ApplicationError):
        if cause.details and isinstance(cause.details[0], dict):
            try:
                state = RunState.model_validate(cause.details[0])
            except ValueError:
                state = None
        code = cause.type or contracts.E_STEP_FAILED
        message = cause.message
        child_step = state.error.step_id if state is not None and state.error else None
    elif isinstance(cause, ChildCancelled):
        code, message, child_step = contracts.E_CANCELLED, "the child run was cancelled", None
    elif isinstance(cause, TerminatedError):
        code, message, child_step = "TERMINATED", "the child run was terminated", None
    else:
        code, message, child_step = contracts.E_STEP_FAILED, str(cause or e), None
    error = RunError(
        code=code,
        message=f"{spec.label} ({spec.run_id}) failed: {message}",
        step_id=step_id,
        details={"child_run_id": spec.run_id, "child_step_id": child_step},
    )
    return state, error


def _cancel_message(e: asyncio.CancelledError) -> str | None:
    return e.args[0] if e.args and isinstance(e.args[0], str) else None


def _cancel_pending() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _status(o: _Outcome) -> str:
    if o.cancelled:
        return RunStatus.cancelled.value
    return RunStatus.failed.value if o.error is not None else RunStatus.completed.value
