"""Governing a run after it started: raise its budget, give an `input` step its value,
re-run it from a step.

Each goes through `RunService` (runs_service.py) for who may see or change the run, so
the ownership rule lives in one place; what the run itself decides (is this value valid,
is this raise above what is spent) the workflow answers in its Update validators, and
the gateway passes that answer on (422 with the problems the workflow named).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.errors import (
    ApiError,
    conflict,
    map_rpc_error,
    not_found,
    unavailable,
    unprocessable,
)
from api.history import start_input
from api.runs_service import RunService, new_run_id
from duratask.access import may_see
from duratask.logging import get_logger
from duratask.store.definitions import NotFound
from workflows import contracts, proofs
from workflows.inputs import InputError, resolve_inputs
from workflows.models import (
    BudgetRaise,
    BudgetState,
    InputSubmission,
    RunState,
    StepStatus,
    Trigger,
)
from workflows.run_workflow import TaskRunWorkflow

log = get_logger(__name__)


def _refused(e: WorkflowUpdateFailedError) -> ApiError:
    """The workflow's own answer to a refused Update, as a 4xx."""
    cause = e.cause
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details else {}
        problems = details.get("problems") if isinstance(details, dict) else None
        status = {"NOT_WAITING": 409, contracts.E_APPROVAL_FORBIDDEN: 403}.get(
            cause.type or "", 422
        )
        extra: dict[str, Any] = {"problems": problems} if problems else {}
        return ApiError(status, cause.message, **extra)
    return unprocessable(str(cause or e))


class GovernanceService:
    def __init__(self, runs: RunService) -> None:
        self.runs = runs

    async def _update(self, run_id: str, method: Any, arg: Any) -> Any:
        try:
            return await self.runs.handle(run_id).execute_update(method, arg)
        except WorkflowUpdateFailedError as e:
            raise _refused(e) from None
        except RPCError as e:
            raise map_rpc_error(e) from None

    async def _running(self, run_id: str, action: str, approver: bool = False) -> Any:
        """The run's description if it is running and the caller may act on it (an
        approver: may see it)."""
        runs = self.runs
        desc = await (runs.describe(run_id) if approver else runs.may_act(run_id))
        if desc.status != WorkflowExecutionStatus.RUNNING:
            raise conflict(f"cannot {action}: run '{run_id}' is not running")
        return desc

    # ------------------------------------------------------------ budget
    async def raise_budget(
        self, run_id: str, max_tokens: int | None, max_cost_usd: float | None, comment: str | None
    ) -> BudgetState:
        who = self.runs.principal
        desc = await self._running(run_id, "raise the budget", approver=True)
        if not who.has("tasks:approve"):
            raise ApiError(403, f"'{who.identity}' lacks the 'tasks:approve' scope")
        key = self.runs.settings.approval_key
        if key is None:
            raise unavailable(
                "budget raises are not available: no approval key is configured "
                "(DURATASK_APPROVAL_KEY)"
            )
        plain = BudgetRaise(
            max_tokens=max_tokens, max_cost_usd=max_cost_usd, by=who.identity, comment=comment
        )
        # the run believes the raise only with this proof that an approver made it
        req = proofs.sign_raise(
            key.get_secret_value().encode(), run_id, plain,
            nonce=secrets.token_hex(16), issued_at=datetime.now(UTC),
        )  # fmt: skip
        result: BudgetState = await self._update(run_id, TaskRunWorkflow.raise_budget, req)
        await self.runs._record(
            "run.budget", run_id, desc, max_tokens=result.max_tokens,
            max_cost_usd=result.max_cost_usd,
        )  # fmt: skip
        return result

    # ------------------------------------------------------------ input
    async def submit_input(self, run_id: str, step_id: str, value: Any) -> Any:
        desc = await self._running(run_id, f"submit input to '{step_id}'")
        req = InputSubmission(step_id=step_id, value=value, by=self.runs.principal.identity)
        accepted = await self._update(run_id, TaskRunWorkflow.submit_input, req)
        await self.runs._record("run.input", run_id, desc, step_id=step_id)
        return accepted

    # ------------------------------------------------------------ re-run
    async def rerun(
        self,
        run_id: str,
        from_step: str,
        version: int | None,
        new_input: dict[str, Any] | None,
    ) -> RunState:
        """A new run of the same definition (or `version` of it) that takes the recorded
        outputs of the steps before `from_step` from `run_id` and executes the rest."""
        runs = self.runs
        desc = await runs.may_act(run_id)
        if desc.status == WorkflowExecutionStatus.RUNNING:
            raise conflict(f"cannot re-run: run '{run_id}' is still running")
        old = await start_input(runs.client, runs.handle(run_id))
        original = await runs.get(run_id)
        definition_id = original.definition_id
        bundle = old.bundle
        if version is not None or bundle is None:
            # an unpinned (scheduled) original ran the version it resolved at its start
            want = version if version is not None else original.definition_version or None
            try:
                stored = await runs.store.get(definition_id, want)
                if not may_see(runs.principal, stored.owner, stored.team):
                    raise NotFound(f"definition '{definition_id}' not found")
                bundle = await runs.store.bundle(definition_id, want)
            except NotFound as e:
                raise not_found(str(e)) from None
        definition = bundle.root.definition
        ids = [s.id for s in definition.steps]
        if from_step not in ids:
            raise unprocessable(
                f"from_step '{from_step}' is not a step of {definition_id} "
                f"v{bundle.root.version} (steps: {', '.join(ids)})",
                problems=[{"field": "from_step", "message": "unknown step"}],
            )
        reused: dict[str, Any] = {}
        for sid in ids[: ids.index(from_step)]:
            try:
                st = original.step(sid)
            except KeyError:
                continue
            if st.status != StepStatus.completed:
                continue
            if st.truncated:
                raise conflict(
                    f"step '{sid}' of run '{run_id}' has an output too large to be kept in "
                    "the run state: re-run from it or from an earlier step"
                )
            reused[sid] = st.output
        try:
            inputs = resolve_inputs(definition, old.input if new_input is None else new_input)
        except InputError as e:
            raise unprocessable(
                str(e), problems=[{"field": "input", "message": p} for p in e.problems]
            ) from None
        meta = old.meta.model_copy(
            update={
                "rerun_of": run_id,
                "rerun_from": from_step,
                "trigger": Trigger.retry,
                "created_at": datetime.now(UTC),
                "created_by": runs.principal.identity,
                "idempotency_key": None,
                "scheduled_for": None,
            }
        )
        inp = old.model_copy(
            update={
                "bundle": bundle,
                "version": bundle.root.version,
                "input": inputs,
                "meta": meta,
                "carry": None,
                "stream_state": None,
                "reused": reused,
                "config": runs.run_config(),
            }
        )
        state, _ = await runs.start_input(new_run_id(), inp)
        for st in state.steps:  # what the new run will take from the original
            st.reused = st.id in reused
        await runs._record(
            "run.rerun", run_id, desc, new_run_id=state.run_id, from_step=from_step,
            version=bundle.root.version, reused=sorted(reused),
        )  # fmt: skip
        log.info("re-run started", run_id=state.run_id, rerun_of=run_id, from_step=from_step)
        return state
