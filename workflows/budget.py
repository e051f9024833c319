"""Budgets: token and cost limits of a run and of its steps, checked after every model call.

A looping agent must not spend without bound. The agent loop accumulates every call's
usage in the run state; right after it does, `Budget.after_model_call` compares the run's
and the step's totals with their limits. On reaching one, the run either fails with
`BUDGET_EXCEEDED` or (`on_budget: approve`) waits, durably, until someone with the
approve scope raises the limit through the `raise_budget` Update. This is deliberately
not the approval-step machinery: raising a budget is a number, not a yes/no on a step.
It does share the approvals' trust rule: a raise counts only with the gateway's proof
(workflows/proofs.py), checked in the Update's validator, because anyone who can reach
the Temporal namespace can send a raw update claiming any identity and scopes.
Nothing here runs unless a limit is set, so runs without limits (and old histories)
issue exactly the commands they always did.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from workflows import contracts, proofs
from workflows.errors import fail
from workflows.events import EventType
from workflows.models import (
    BudgetRaise,
    BudgetState,
    DailyLimits,
    DailyUsage,
    RunStatus,
    Usage,
    UsageRecordRequest,
)

if TYPE_CHECKING:
    from workflows.definition import Step
    from workflows.host import RunHost


def _reached(usage: Usage, max_tokens: int | None, max_cost: float | None) -> str | None:
    """What limit `usage` reached, in words; None while within both."""
    if max_tokens is not None and usage.total_tokens >= max_tokens:
        return f"{usage.total_tokens} tokens used, limit {max_tokens}"
    if max_cost is not None and usage.cost_usd >= max_cost:
        return f"${usage.cost_usd:.6f} spent, limit ${max_cost:g}"
    return None


def _set(limits: DailyLimits | None) -> DailyLimits | None:
    if limits is None or (limits.max_tokens is None and limits.max_cost_usd is None):
        return None
    return limits


class Budget:
    def __init__(self, wf: RunHost) -> None:
        self.wf = wf

    @property
    def state(self) -> BudgetState | None:
        """The run's limits (created on first use from the definition; carried in the
        run state across continue-as-new)."""
        st = self.wf.tracker.state
        if st.budget is None:
            limits = self.wf.definition.limits
            no_daily = self._daily_limits() == (None, None)
            if limits.max_tokens is None and limits.max_cost_usd is None and no_daily:
                return None
            st.budget = BudgetState(
                max_tokens=limits.max_tokens,
                max_cost_usd=limits.max_cost_usd,
                on_budget=limits.on_budget or self.wf.inp.config.on_budget,
            )
        return st.budget

    def _daily_limits(self) -> tuple[DailyLimits | None, DailyLimits | None]:
        """The daily limits (settings) of the run's owner and of its definition."""
        cfg = self.wf.inp.config
        per_def = cfg.daily_per_definition
        owner = _set(cfg.daily_per_owner) if self.wf.tracker.state.owner else None
        return owner, _set(per_def.get(self.wf.definition.id) or per_def.get("*"))

    def _has_limits(self, step: Step) -> bool:
        lim = self.wf.definition.limits
        return (
            lim.max_tokens is not None
            or lim.max_cost_usd is not None
            or (step.limits is not None)
            or self._daily_limits() != (None, None)
        )

    async def after_model_call(self, step: Step) -> None:
        """Publish the usage so far; fail or wait when a limit is reached."""
        t = self.wf.tracker
        run_usage = t.state.usage
        t.emit(
            EventType.USAGE_UPDATED, step.id, None,
            input_tokens=run_usage.input_tokens, output_tokens=run_usage.output_tokens,
            cost_usd=run_usage.cost_usd, step_tokens=t.step(step.id).usage.total_tokens,
            step_cost_usd=t.step(step.id).usage.cost_usd,
        )  # fmt: skip
        if not self._has_limits(step):
            return
        if step.limits is not None:  # a step's limit is the step's own: it always fails
            why = _reached(t.step(step.id).usage, step.limits.max_tokens, step.limits.max_cost_usd)
            if why is not None:
                self._exceeded(step, f"step '{step.id}' budget reached: {why}", "step")
        budget = self.state
        if budget is None:
            return
        if self._daily_limits() != (None, None):
            why = await self._record_daily(step, budget)
            if why is not None and not budget.daily_waived:
                message = f"daily budget reached: {why}"
                if budget.on_budget == "fail":
                    self._exceeded(step, message, "day")
                await self._park(step, budget, message)
                budget.daily_waived = True  # an approver let this run go on today
        while (why := _reached(run_usage, budget.max_tokens, budget.max_cost_usd)) is not None:
            message = f"run budget reached: {why}"
            if budget.on_budget == "fail":
                self._exceeded(step, message, "run")
            await self._park(step, budget, message)

    async def _record_daily(self, step: Step, budget: BudgetState) -> str | None:
        """Record the usage since the last record in the store (an activity); what daily
        limit the owner's or the definition's usage today reached, if any."""
        st = self.wf.tracker.state
        used = st.usage
        budget.records += 1
        req = UsageRecordRequest(
            key=f"{st.run_id}/{budget.records}", run_id=st.run_id, owner=st.owner,
            definition_id=st.definition_id,
            tokens=used.total_tokens - budget.recorded_tokens,
            cost_usd=round(used.cost_usd - budget.recorded_cost_usd, 8),
        )  # fmt: skip
        # a local activity: one marker in history instead of a task-queue round trip
        today = await workflow.execute_local_activity(
            contracts.USAGE_ACTIVITY,
            req,
            result_type=DailyUsage,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=10, maximum_interval=timedelta(seconds=10)),
            summary=f"{step.id}: record usage",
        )
        budget.recorded_tokens = used.total_tokens
        budget.recorded_cost_usd = used.cost_usd
        owner, definition = self._daily_limits()
        if owner is not None:
            spent = Usage(input_tokens=today.owner_tokens, cost_usd=today.owner_cost_usd)
            why = _reached(spent, owner.max_tokens, owner.max_cost_usd)
            if why is not None:
                return f"owner '{st.owner}' today: {why}"
        if definition is not None:
            spent = Usage(input_tokens=today.definition_tokens, cost_usd=today.definition_cost_usd)
            why = _reached(spent, definition.max_tokens, definition.max_cost_usd)
            if why is not None:
                return f"definition '{st.definition_id}' today: {why}"
        return None

    def _exceeded(self, step: Step, message: str, scope: str) -> None:
        self.wf.tracker.emit(EventType.BUDGET_EXCEEDED, step.id, message, scope=scope)
        raise fail(contracts.E_BUDGET, message, step.id, scope=scope)

    async def _park(self, step: Step, budget: BudgetState, message: str) -> None:
        t = self.wf.tracker
        budget.exceeded = message
        t.emit(EventType.BUDGET_EXCEEDED, step.id, f"{message}: waiting for an approver to raise it",
               scope="run", waiting=True)  # fmt: skip
        t.set_status(RunStatus.awaiting_approval)
        raised = len(budget.raises)
        await workflow.wait_condition(lambda: len(budget.raises) > raised)
        budget.exceeded = None
        t.set_status(RunStatus.running)

    # ------------------------------------------------------------ the Update
    def validate_raise(self, req: BudgetRaise) -> None:
        """Refuse (the caller sees why) a raise without a valid proof from the gateway
        (which signs only for callers with tasks:approve; `req.scopes` is not believed),
        without a new limit, or one that does not lift the limit above what is spent."""
        if not req.by:
            raise ValueError("a budget raise needs the identity of who raises it")
        used_nonces = [r.get("nonce") for r in (self.state.raises if self.state else [])]
        bad = proofs.check_raise(
            req, workflow.info().workflow_id, workflow.now(), [n for n in used_nonces if n]
        )
        if bad is not None:
            raise ApplicationError(
                f"'{req.by}' may not raise the budget: {bad}",
                type=contracts.E_APPROVAL_FORBIDDEN,
                non_retryable=True,
            )
        budget = self.state
        if budget is None:
            raise ValueError("this run has no budget (limits.max_tokens / max_cost_usd)")
        if req.max_tokens is None and req.max_cost_usd is None:
            raise ValueError("give max_tokens and/or max_cost_usd")
        used = self.wf.tracker.state.usage
        if req.max_tokens is not None and req.max_tokens <= used.total_tokens:
            raise ValueError(
                f"max_tokens {req.max_tokens} is not above the {used.total_tokens} tokens used"
            )
        if req.max_cost_usd is not None and req.max_cost_usd <= used.cost_usd:
            raise ValueError(
                f"max_cost_usd {req.max_cost_usd:g} is not above the ${used.cost_usd:.6f} spent"
            )

    def apply_raise(self, req: BudgetRaise) -> BudgetState:
        budget = self.state
        assert budget is not None  # the validator checked
        if req.max_tokens is not None:
            budget.max_tokens = req.max_tokens
        if req.max_cost_usd is not None:
            budget.max_cost_usd = req.max_cost_usd
        budget.raises.append(
            {"by": req.by, "max_tokens": budget.max_tokens, "max_cost_usd": budget.max_cost_usd,
             "comment": req.comment, "at": workflow.now().isoformat(),
             **({"nonce": req.proof.nonce} if req.proof is not None else {})}
        )  # fmt: skip
        self.wf.tracker.emit(
            EventType.BUDGET_RAISED, self.wf.tracker.state.current_step,
            f"budget raised by {req.by}", by=req.by, max_tokens=budget.max_tokens,
            max_cost_usd=budget.max_cost_usd,
        )  # fmt: skip
        return budget
