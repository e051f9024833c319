"""TaskRunWorkflow: one run of a task definition, interpreted step by step.

The workflow receives the pinned definition bundle, walks its steps following
`next` / `then` / `else`, and turns each step into Temporal primitives: activities
for model and tool calls, durable timers for waits, signals for people. Everything
observable lives in `RunTracker.state`, answered by the `state` query and returned
as the result (or attached to the failure) when the run ends.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.contrib.workflow_streams import WorkflowStream
from temporalio.exceptions import ActivityError, ApplicationError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from workflows import contracts, retries
    from workflows.agent import AgentLoop
    from workflows.approvals import Approvals
    from workflows.budget import Budget
    from workflows.children import Children
    from workflows.definition import (
        END,
        ApprovalStep,
        ConditionalStep,
        InputStep,
        LlmCallStep,
        NotifyStep,
        ParallelStep,
        Step,
        SubTaskStep,
        TaskDefinition,
        ToolCallStep,
        WaitStep,
    )
    from workflows.durations import parse_duration
    from workflows.errors import StepFailure, fail, from_exception
    from workflows.events import EventType, StreamPublisher
    from workflows.expressions import ExpressionError, MissingValueError, evaluate_condition
    from workflows.graph import default_next
    from workflows.human_input import HumanInput
    from workflows.inputs import InputError, resolve_inputs
    from workflows.mcp_tools import McpToolSpec, is_mcp, tool_allowed
    from workflows.mcp_tools import servers as mcp_servers
    from workflows.models import (
        AgentCarry,
        ApprovalDecision,
        ApprovalOutcome,
        BudgetRaise,
        BudgetState,
        CancelRequest,
        DefinitionBundle,
        InputSubmission,
        Intervention,
        McpListRequest,
        McpListResult,
        NotifyRequest,
        NotifyResult,
        PriorityChange,
        ResolveBundleRequest,
        RunCarry,
        RunComment,
        RunError,
        RunInput,
        RunState,
        RunStatus,
        ToolRequest,
        ToolResult,
        pending_bundle,
    )
    from workflows.templates import render_text, render_value
    from workflows.tool_policies import ToolGate
    from workflows.tracker import RunTracker, clip

DEFAULT_TIMEOUTS = {
    "llm_call": timedelta(minutes=10),
    "tool_call": timedelta(minutes=5),
    "notify": timedelta(minutes=1),
}
HEARTBEAT = timedelta(seconds=10)
COMMENT_PREVIEW = 500  # characters of a comment kept in the run's events
# workflow.patched ids (docs/development.md, "Changing workflow code")
PATCH_INTERRUPTIONS = "worker-interruptions-not-counted"
PATCH_CAN_BETWEEN_STEPS = "continue-as-new-between-steps"


@workflow.defn(name="TaskRunWorkflow", failure_exception_types=[ExpressionError, InputError])
class TaskRunWorkflow:
    @workflow.init
    def __init__(self, inp: RunInput) -> None:
        self.inp = inp
        self.definition: TaskDefinition = pending_bundle(inp).root.definition
        self.tracker = RunTracker(workflow.info().workflow_id, inp)
        # The run's live event stream (docs/events.md); carried across continue-as-new.
        self.stream = WorkflowStream(inp.stream_state)
        self.events = StreamPublisher(self.stream, self.tracker.state.run_id)
        self.tracker.sinks.append(self.events)
        self.priority = inp.meta.priority
        # an inline branch sees the outputs of its parent's earlier steps as `steps.<id>`
        self.outputs: dict[str, dict[str, Any]] = dict(inp.parent_outputs)
        self.executions: dict[str, int] = {}
        self.agent = AgentLoop(self)
        self.children = Children(self)
        self.approvals = Approvals(self)
        self.budget = Budget(self)
        self.human_input = HumanInput(self)
        self.tool_gate = ToolGate(self)  # tool policies (docs/approvals.md#tool-policies)
        # continue-as-new: pick up where the previous execution stopped
        self.resume_step: str | None = None  # continued in the middle of this step
        self.next_step: str | None = None  # continued before this step
        self.executed = 0  # steps executed, across executions (limits.max_steps)
        if inp.carry is not None:
            carry = inp.carry
            self.tracker.state = carry.state
            self.tracker.resume(carry.output_bytes, carry.step_durations)
            self.outputs = carry.outputs
            self.executions = carry.executions
            self.inputs = carry.inputs
            self.executed = carry.executed
            if carry.between_steps:
                self.next_step = carry.current_step
            else:
                self.resume_step = carry.current_step

    # ------------------------------------------------------------ queries, signals
    @workflow.query
    def state(self) -> RunState:
        return self.tracker.state

    @workflow.signal
    def request_cancel(self, req: CancelRequest) -> None:
        """Sent just before a cancel so the reason and who asked are recorded."""
        self.tracker.state.cancel_reason = req.reason or None
        self.tracker.emit(EventType.RUN_CANCEL_REQUESTED, None, req.reason, by=req.requested_by)
        self.children.forward_cancel(req)

    @workflow.signal
    def set_priority(self, change: PriorityChange) -> None:
        """Steps dispatched from now on use the new priority."""
        self.priority = change.priority
        self.tracker.state.priority = change.priority
        workflow.upsert_search_attributes([contracts.SA_PRIORITY.value_set(change.priority.value)])
        self.tracker.emit(EventType.RUN_PRIORITY_CHANGED, None, change.priority.value, by=change.by)

    @workflow.signal
    def approve(self, decision: ApprovalDecision) -> None:
        """Old clients' path: counts only with a valid proof, else `approval.refused`."""
        self.approvals.decide(decision)

    @workflow.update
    def decide(self, decision: ApprovalDecision) -> ApprovalOutcome:
        """A decision with the workflow's own answer (validator: proof, approver, state)."""
        return self.approvals.count_update(decision)

    @decide.validator
    def _validate_decide(self, decision: ApprovalDecision) -> None:
        self.approvals.validate(decision)

    @workflow.signal
    def intervene(self, msg: Intervention) -> None:
        self.agent.intervene(msg)

    @workflow.signal
    def comment(self, c: RunComment) -> None:
        """A thread entry (docs/collaboration.md) shown in the run's events, as it happens."""
        body = clip(c.body, COMMENT_PREVIEW)
        who = f"{c.author} -> {c.to}" if c.kind == "handoff" else c.author
        self.tracker.emit(
            EventType.RUN_COMMENT, self.tracker.state.current_step, f"{c.kind} by {who}",
            kind=c.kind, author=c.author, body=body, to=c.to, comment_id=c.comment_id,
        )  # fmt: skip

    @workflow.update
    def raise_budget(self, req: BudgetRaise) -> BudgetState:
        """Raise the run's token / cost limits (docs/models-and-tools.md#budgets)."""
        return self.budget.apply_raise(req)

    @raise_budget.validator
    def _check_raise(self, req: BudgetRaise) -> None:
        self.budget.validate_raise(req)

    @workflow.update
    def submit_input(self, req: InputSubmission) -> Any:
        """The value of a waiting `input` step (docs/runs.md#human-input)."""
        return self.human_input.submit(req)

    @submit_input.validator
    def _check_input(self, req: InputSubmission) -> None:
        self.human_input.validate(req)

    # ------------------------------------------------------------ run
    @workflow.run
    async def run(self, inp: RunInput) -> RunState:
        if inp.bundle is None:
            inp = await self._resolve_bundle(inp)
        t = self.tracker
        if inp.carry is None:
            t.started()
        timeout = self.definition.limits.timeout
        try:
            try:
                if inp.carry is None:
                    self.inputs = resolve_inputs(self.definition, inp.input)
            except InputError as e:
                raise fail(contracts.E_INVALID_INPUT, str(e)) from None
            t.state.input = self.inputs
            if timeout is not None:
                budget = parse_duration(timeout).total_seconds()
                if t.state.started_at is not None:  # the run's time, across continue-as-new
                    budget -= (workflow.now() - t.state.started_at).total_seconds()
                await asyncio.wait_for(self._walk(), max(budget, 0.001))
            else:
                await self._walk()
        except StepFailure as f:
            self._fail(f.error)
        except TimeoutError:
            limit = f"the run exceeded its time limit of {timeout}"
            self._fail(
                RunError(code=contracts.E_TIMEOUT, message=limit, step_id=t.state.current_step)
            )
        except asyncio.CancelledError:
            self._cancelled()
            raise
        t.finish(RunStatus.completed)
        t.emit(EventType.RUN_COMPLETED, None, "run completed")
        return t.state

    async def _resolve_bundle(self, inp: RunInput) -> RunInput:
        """An unpinned (scheduled) run: load the definition's bundle as it is now."""
        req = ResolveBundleRequest(definition_id=inp.definition_id or "", version=inp.version)
        try:
            bundle = await workflow.execute_activity(
                contracts.RESOLVE_BUNDLE_ACTIVITY,
                req,
                result_type=DefinitionBundle,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=5),
                summary=f"resolve {req.definition_id}",
            )
        except ActivityError as e:
            cause = e.cause
            message = cause.message if isinstance(cause, ApplicationError) else str(e)
            self._fail(RunError(code=contracts.E_DEFINITION_NOT_FOUND, message=message))
        self.inp = inp = inp.model_copy(update={"bundle": bundle})
        self.definition = bundle.root.definition
        self.tracker.state = RunTracker(workflow.info().workflow_id, inp).state
        return inp

    def _fail(self, error: RunError) -> None:
        t = self.tracker
        if error.step_id and t.step(error.step_id).status == "running":
            t.step_failed(error.step_id, error)
        t.finish(RunStatus.failed, error)
        t.emit(EventType.RUN_FAILED, error.step_id, error.message, code=error.code)
        raise ApplicationError(
            error.message,
            t.state.model_dump(mode="json"),
            type=error.code,
            non_retryable=True,
        )

    def _cancelled(self) -> None:
        t = self.tracker
        if t.state.current_step:
            t.step_cancelled(t.state.current_step)
        if not t.state.cancel_reason:  # the signal with the reason can trail the cancel
            t.state.cancel_reason = workflow.cancellation_reason() or None  # which has it too
        reason = t.state.cancel_reason or "cancelled"
        t.finish(
            RunStatus.cancelled,
            RunError(code=contracts.E_CANCELLED, message=reason, step_id=t.state.current_step),
        )
        t.emit(EventType.RUN_CANCELLED, None, reason)

    async def _walk(self) -> None:
        steps = self.definition.steps
        index = {s.id: i for i, s in enumerate(steps)}
        current = self.resume_step or self.next_step or steps[0].id
        limit = self.definition.limits.max_steps
        first = True
        while current != END:
            counted = current != self.resume_step  # a resumed step was counted before
            if counted and self.executed >= limit:
                raise fail(
                    contracts.E_MAX_STEPS,
                    f"the run executed more than limits.max_steps={limit} steps",
                    current,
                )
            if not first and self._history_is_long():
                await self.continue_as_new(next_step=current)
            first = False
            if counted:
                self.executed += 1
            step = steps[index[current]]
            current = await self._run_step(step, index[current])
        for s in steps:
            self.tracker.step_skipped(s.id, "not on the path taken")
        last = self._last_output()
        self.tracker.state.result = last

    def _history_is_long(self) -> bool:
        """Time to continue as new (between two steps): docs/runs.md#long-runs."""
        info = workflow.info()
        cfg = self.inp.config
        long = (
            info.get_current_history_length() >= cfg.continue_as_new_history_events
            or info.get_current_history_size() >= cfg.continue_as_new_history_bytes
            or info.is_continue_as_new_suggested()
        )
        return long and workflow.patched(PATCH_CAN_BETWEEN_STEPS)

    def _last_output(self) -> Any:
        for s in reversed(self.tracker.state.steps):
            if s.status == "completed" and s.action not in ("conditional",):
                return s.output
        return None

    # ------------------------------------------------------------ steps
    async def _run_step(self, step: Step, i: int) -> str:

        t = self.tracker
        if self._reusable(step):
            return self._reuse(step, i)
        if self.resume_step == step.id:  # continued-as-new in the middle of this step
            self.resume_step = None
        else:
            self.executions[step.id] = self.executions.get(step.id, 0) + 1
            t.step_started(step.id, step.title)
        try:
            output, truncated, nxt = await self._dispatch(step)
        except StepFailure as f:
            f.error.step_id = f.error.step_id or step.id
            t.step_failed(step.id, f.error)
            raise
        except MissingValueError as e:
            err = RunError(
                code=contracts.E_TEMPLATE,
                message=f"{e}: check the template in step '{step.id}'",
                step_id=step.id,
                details={"missing": e.name},
            )
            t.step_failed(step.id, err)
            raise StepFailure(err) from None
        except ExpressionError as e:
            err = RunError(code=contracts.E_TEMPLATE, message=str(e), step_id=step.id)
            t.step_failed(step.id, err)
            raise StepFailure(err) from None
        self.outputs[step.id] = {"output": output, "status": "completed"}
        t.step_completed(step.id, output, truncated)
        return nxt or default_next(self.definition.steps, i)

    def _reusable(self, step: Step) -> bool:
        """A re-run takes the original's output of `step`: it comes before the step the
        re-run starts from, and that step has not been reached yet."""
        if step.id not in self.inp.reused or self.resume_step == step.id:
            return False
        start = self.inp.meta.rerun_from
        return not (start and self.tracker.step(start).status != "pending")

    def _reuse(self, step: Step, i: int) -> str:
        """Record the original run's output of `step` without executing it (no activity,
        no child, no timer: the command sequence has nothing for it)."""
        t = self.tracker
        output = self.inp.reused[step.id]
        s = t.step(step.id)
        s.reused = True
        t.state.current_step = step.id
        t.emit(EventType.STEP_REUSED, step.id, f"{step.title}: output reused from "
               f"{self.inp.meta.rerun_of}", source=self.inp.meta.rerun_of)  # fmt: skip
        self.outputs[step.id] = {"output": output, "status": "completed"}
        t.step_completed(step.id, output)
        if isinstance(step, ConditionalStep) and isinstance(output, dict) and output.get("next"):
            return str(output["next"])
        return default_next(self.definition.steps, i)

    async def _dispatch(self, step: Step) -> tuple[Any, bool, str | None]:
        if isinstance(step, LlmCallStep):
            out, truncated = await self.agent.run(step)
            return out, truncated, None
        if isinstance(step, ToolCallStep):
            return await self._tool_step(step)
        if isinstance(step, ConditionalStep):
            return self._conditional(step)
        if isinstance(step, WaitStep):
            return await self._wait(step), False, None
        if isinstance(step, NotifyStep):
            return await self._notify(step), False, None
        if isinstance(step, SubTaskStep | ParallelStep):
            return await self.children.run(step)
        if isinstance(step, ApprovalStep):
            return await self.approvals.run(step)
        if isinstance(step, InputStep):
            return await self.human_input.run(step)
        raise fail(contracts.E_STEP_FAILED, f"unknown action {step.action!r}", step.id)

    @property
    def bundle(self) -> DefinitionBundle:
        """The pinned bundle (an unpinned run resolves it before its first step)."""
        if self.inp.bundle is None:
            raise RuntimeError("the run's bundle is not resolved yet")
        return self.inp.bundle

    def namespace(self) -> dict[str, Any]:
        st = self.tracker.state
        return {
            "input": getattr(self, "inputs", self.inp.input),
            "steps": self.outputs,
            "run": {
                "id": st.run_id,
                "definition_id": st.definition_id,
                "definition_version": st.definition_version,
                "owner": st.owner,
                "priority": st.priority.value,
                "trigger": st.trigger.value,
                "started_at": st.started_at.isoformat() if st.started_at else None,
                "now": workflow.now().isoformat(),
            },
        }

    def _conditional(self, step: ConditionalStep) -> tuple[Any, bool, str | None]:
        result = evaluate_condition(step.condition, self.namespace())
        steps = self.definition.steps
        i = next(k for k, s in enumerate(steps) if s.id == step.id)
        fallthrough = steps[i + 1].id if i + 1 < len(steps) else END
        target = step.then if result else (step.else_ or fallthrough)
        self.tracker.emit(
            EventType.STEP_BRANCH, step.id, f"condition {result} -> {target}", taken=target
        )
        return {"result": result, "next": target}, False, target

    async def _wait(self, step: WaitStep) -> Any:
        if step.duration is not None:
            delay = parse_duration(step.duration)
        else:
            until_text = render_text(step.until or "", self.namespace())
            try:
                until = datetime.fromisoformat(until_text.replace("Z", "+00:00"))
            except ValueError:
                raise fail(
                    contracts.E_STEP_FAILED, f"'until' is not an ISO 8601 time: {until_text!r}"
                ) from None
            if until.tzinfo is None:
                raise fail(contracts.E_STEP_FAILED, f"'until' needs a time zone: {until_text!r}")
            delay = max(timedelta(0), until - workflow.now())
        await workflow.sleep(delay, summary=f"{step.id}: wait {delay}")
        return {"waited_s": delay.total_seconds()}

    async def _tool_step(self, step: ToolCallStep) -> tuple[Any, bool, str | None]:
        args = render_value(step.args, self.namespace())
        result = await self.call_tool(step, step.tool, args, call_id="0")
        if result.error:
            raise fail(contracts.E_TOOL, result.error, step.id, tool=step.tool)
        return result.output, result.truncated, None

    async def _notify(self, step: NotifyStep) -> Any:
        message = render_text(step.message, self.namespace())
        req = NotifyRequest(
            run_id=self.tracker.state.run_id,
            step_id=step.id,
            message=message,
            channel=step.channel,
            data=render_value(step.data, self.namespace()),
            idempotency_key=self.idempotency_key(step.id, "notify"),
        )
        res = await self.activity(
            contracts.NOTIFY_ACTIVITY, req, NotifyResult, step, f"{step.id}: notify"
        )
        return {"message": message, "delivered": res.delivered}

    async def continue_as_new(
        self, agent: AgentCarry | None = None, next_step: str | None = None
    ) -> NoReturn:
        """Go on in a fresh execution (same workflow id), carrying the whole run along.

        Mid-step (the agent loop, `agent`): the step is resumed. Between steps
        (`next_step`): that step starts in the new execution. The event stream goes too:
        its pollers are released first (watchers follow the run into the new execution
        and resume at their offset), and only its latest `config.stream_carry_limit`
        items are carried so the new history starts small.
        """
        t = self.tracker
        step_id = next_step or t.state.current_step or ""
        count = t.state.continued_as_new + 1
        t.emit(EventType.RUN_CONTINUED_AS_NEW, step_id, "history compacted: continuing as new",
               execution=count + 1)  # fmt: skip
        state = t.state.model_copy(update={"continued_as_new": count})
        carry = RunCarry(
            state=state,
            outputs=self.outputs,
            executions=self.executions,
            inputs=getattr(self, "inputs", self.inp.input),
            current_step=step_id,
            agent=agent,
            between_steps=next_step is not None,
            executed=self.executed,
            output_bytes=t.output_bytes,
            step_durations=t.step_durations,
        )
        self.stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)
        stream_state = self.stream.get_state()
        excess = len(stream_state.log) - self.inp.config.stream_carry_limit
        if excess > 0:
            stream_state.log = stream_state.log[excess:]
            stream_state.base_offset += excess
        workflow.continue_as_new(
            self.inp.model_copy(update={"carry": carry, "stream_state": stream_state})
        )

    # ------------------------------------------------------------ activity plumbing
    def idempotency_key(self, step_id: str, call_id: str) -> str:
        n = self.executions.get(step_id, 1)
        return f"{self.tracker.state.run_id}/{step_id}/{n}/{call_id}"

    async def call_tool(
        self, step: Step, tool: str, args: dict[str, Any], call_id: str
    ) -> ToolResult:
        t = self.tracker
        allowed = self.definition.tools
        t.emit(EventType.TOOL_REQUESTED, step.id, f"tool {tool}", tool=tool, call_id=call_id)
        if not tool_allowed(tool, allowed):
            msg = f"tool '{tool}' is not allowed in this task (allowed: {', '.join(allowed) or 'none'})"
            t.emit(EventType.TOOL_COMPLETED, step.id, msg, tool=tool, call_id=call_id, error=True)
            return ToolResult(error=msg)
        refused = await self.tool_gate.check(step, tool, args, call_id)
        if refused is not None:  # denied by a policy, or its approval refused / timed out
            t.emit(EventType.TOOL_COMPLETED, step.id, refused.error, tool=tool, call_id=call_id,
                   error=True)  # fmt: skip
            return refused
        req = ToolRequest(
            run_id=t.state.run_id,
            step_id=step.id,
            tool=tool,
            args=args,
            allowed=allowed,
            idempotency_key=self.idempotency_key(step.id, call_id),
            owner=t.state.owner,
            max_output_bytes=self.inp.config.max_output_bytes,
        )
        summary = f"{step.id}: {tool}" if is_mcp(tool) else f"{step.id}: tool {tool}"
        result = await self.activity(contracts.TOOL_ACTIVITY, req, ToolResult, step, summary)
        t.emit(
            EventType.TOOL_COMPLETED,
            step.id,
            f"tool {tool} {'failed' if result.error else 'done'}",
            tool=tool,
            call_id=call_id,
            error=bool(result.error),
        )
        return result

    async def pin_mcp_tools(self, step: Step, allowed: list[str]) -> list[McpToolSpec]:
        """The MCP tools `allowed` offers, listing each server once per run (an activity)
        and keeping the result in the run state, so every later turn, a continue-as-new
        and a replay see the same tools."""
        state = self.tracker.state
        missing = [s for s in mcp_servers(allowed) if s not in state.mcp_listed]
        if missing:
            req = McpListRequest(run_id=state.run_id, step_id=step.id, servers=missing)
            listed: McpListResult = await self.activity(
                contracts.MCP_LIST_ACTIVITY,
                req,
                McpListResult,
                step,
                f"{step.id}: list tools of mcp:{', mcp:'.join(missing)}",
            )
            # only what the definition allows is kept: a big server's other tools
            # would only weigh on the run state
            kept = [t for t in listed.tools if tool_allowed(t.name, self.definition.tools)]
            state.mcp_tools = state.mcp_tools + kept
            state.mcp_listed = state.mcp_listed + missing
        return [t for t in state.mcp_tools if tool_allowed(t.name, allowed)]

    async def activity(
        self,
        name: str,
        arg: Any,
        result_type: type,
        step: Step,
        summary: str,
        max_attempts: int | None = None,
    ) -> Any:
        """Run one activity for `step`: its timeout and retry budget (at most
        `max_attempts` of it: a model with a fallback), and a worker going away (shutdown,
        kill) rescheduled without using that budget (workflows/retries.py)."""
        timeout = (
            parse_duration(step.timeout)
            if step.timeout is not None
            else DEFAULT_TIMEOUTS.get(step.action, timedelta(minutes=5))
        )
        interruptible = workflow.patched(PATCH_INTERRUPTIONS)
        spec = step.retry
        if max_attempts is not None:
            spec = spec or retries.default_spec(step.action)
            spec = spec.model_copy(update={"max_attempts": min(spec.max_attempts, max_attempts)})
        budget = (spec or retries.default_spec(step.action)).max_attempts
        used = 0  # attempts of the work that failed, across reschedulings
        interrupted = 0
        state = self.tracker.step(step.id)
        while True:
            try:
                result = await workflow.execute_activity(
                    name,
                    arg,
                    result_type=result_type,
                    start_to_close_timeout=timeout,
                    heartbeat_timeout=HEARTBEAT,
                    retry_policy=retries.retry_policy(spec, step.action, used, interruptible),
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                    summary=summary[:200],
                    priority=self.temporal_priority(),
                )
            except asyncio.CancelledError:
                raise
            except Exception as e:  # ActivityError: map to the step's structured error
                if is_cancelled_exception(e):  # the run was cancelled while the activity ran
                    raise asyncio.CancelledError(str(e)) from None
                at = retries.interrupted_at(e) if interruptible else None
                if at is None:
                    if interruptible:
                        state.attempts += retries.failed_at(e, max(1, budget - used)) - 1
                    raise StepFailure(from_exception(e, step.id)) from None
                # the worker went away: earlier attempts of this scheduling failed for real
                used += max(at - 1, 0)
                interrupted += 1
                state.attempts += max(at, 1)
                state.interruptions += 1
                self._interrupted(step, arg, e, interrupted)
                continue
            if interruptible:
                state.attempts += max(getattr(result, "attempt", 1), 1) - 1
            return result

    def _interrupted(self, step: Step, arg: Any, err: Exception, count: int) -> None:
        cap = self.inp.config.max_interruptions
        cause = err.cause if isinstance(err, ActivityError) else None
        reason = (
            "worker shut down"
            if isinstance(cause, ApplicationError)
            else "worker lost (heartbeat timeout)"
        )
        if count > cap:
            raise fail(
                contracts.E_WORKER_LOST,
                f"workers went away {count} times while this step ran (limit {cap}); last: {reason}",
                step.id,
            )
        self.tracker.emit(EventType.STEP_INTERRUPTED, step.id, f"{reason}: running it again",
                          interruptions=count)  # fmt: skip
        if step.action == "llm_call":  # watchers drop the text streamed so far
            self.tracker.emit(EventType.LLM_RETRY, step.id, reason, attempt=1,
                              turn=getattr(arg, "turn", None))  # fmt: skip

    def temporal_priority(self) -> Priority:
        return Priority(priority_key=self.priority.key, fairness_key=self.tracker.state.owner)
