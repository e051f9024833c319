"""`approval` steps and the `approve` signal: a run parks until allowed people decide.

A parked run is only a durable timer plus a signal wait, so it costs no worker slot
and survives worker and server restarts. Who may decide is enforced *here*, in the
workflow, because decisions arrive by three paths (the gateway, the CLI through the
gateway, and a raw `temporal workflow signal`) and only the workflow sees them all.
A decision from anyone not on the step's `approvers` list is ignored and recorded as
an `approval.refused` event, so every attempt stays auditable.

Matching rule (shared with the gateway through `is_allowed`): an `approvers` entry
is either an identity (`lead@example.com`) or a group (`group:release-managers`);
identities and group names compare case-insensitively.

Unanswered approvals never hang forever nor pass silently: the step's `timeout`
(default 24h) ends the wait and `on_timeout` (default `reject`) decides.

A tool call a policy holds for approval (`workflows/tool_policies.py`) waits here too,
as a pending approval of the agent's step that also names the tool and its (redacted)
arguments: one machinery, so approvers, proofs, reminders and listings are the same.

An approval may carry an edit: the output the gated step (`edits`, by default the step
listed before the approval) is to have from now on. The edit is part of what the proof
signs, is checked in the validator (size, the gated step's schema) before it can reach
history, and only with `min_approvals: 1`: with several approvers, an edit by one would
make the others' approvals cover an output they never saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows import contracts, proofs
from workflows.definition import ApprovalStep, InputStep, LlmCallStep, Step, ToolPolicy
from workflows.durations import parse_duration
from workflows.errors import fail
from workflows.events import EventType
from workflows.human_input import problems as schema_problems
from workflows.models import (
    ApprovalDecision,
    ApprovalOutcome,
    Delivery,
    NotifyRequest,
    RunStatus,
)
from workflows.notifications import notify_people
from workflows.templates import render_text

if TYPE_CHECKING:
    from workflows.host import RunHost

DEFAULT_TIMEOUT = timedelta(hours=24)
MEMO_KEY = "duratask.approval"
PATCH_PROOFS = "approval-proofs"  # the approve signal requires a proof from here on
MEMO_PROMPT_CHARS = 2000
MAX_PROMPT_CHARS = 8000  # the prompt is kept in state, output and events: bound it
MAX_EDIT_CHARS = 65_536  # an edited output, as compact JSON (it is written to history)


def timeout_of(step: ApprovalStep) -> timedelta:
    return parse_duration(step.timeout) if step.timeout is not None else DEFAULT_TIMEOUT


def normalise(name: str) -> str:
    return name.strip().casefold()


def principal_names(identity: str, groups: Iterable[str] = ()) -> set[str]:
    """The approver-list entries that designate this identity and its groups."""
    names = {normalise(identity)} if identity.strip() else set()
    return names | {f"group:{normalise(g)}" for g in groups if g.strip()}


def is_allowed(approvers: Iterable[str], identity: str, groups: Iterable[str] = ()) -> bool:
    return bool({normalise(a) for a in approvers} & principal_names(identity, groups))


def output_schema(step: Step) -> dict[str, Any] | None:
    """The JSON Schema an edited output of `step` must meet: an `input` step's own schema,
    a string for an `llm_call` answering text; None: any JSON value."""
    if isinstance(step, InputStep):
        return step.schema_
    if isinstance(step, LlmCallStep) and step.output == "text":
        return {"type": "string"}
    return None


def edit_problems(output: Any, step: Step | None) -> list[dict[str, str]]:
    """What is wrong with `output` as the new output of `step` (size, JSON, schema)."""
    try:
        size = len(proofs.encoded_output(output))
    except ValueError as e:
        return [{"field": "output", "message": str(e)}]
    if size > MAX_EDIT_CHARS:
        why = f"the edited output is {size} characters as JSON; at most {MAX_EDIT_CHARS}"
        return [{"field": "output", "message": why}]
    schema = output_schema(step) if step is not None else None
    if schema is None:
        return []
    return [
        {"field": "output" if p["field"] == "value" else f"output.{p['field']}",
         "message": p["message"]}
        for p in schema_problems(schema, output)
    ]  # fmt: skip


@dataclass
class _Pending:
    step: ApprovalStep
    prompt: str | None
    requested_at: datetime
    deadline: datetime
    votes: dict[str, dict[str, Any]] = field(default_factory=dict)
    reminders: int = 0
    tool: dict[str, Any] | None = None  # a held tool call: name, arguments, call_id, policy
    edits: str | None = None  # the step an approval may edit (None: none)
    edit: dict[str, Any] | None = None  # the counted approval's edit: by, output, time

    @property
    def approvals(self) -> list[dict[str, Any]]:
        return [v for v in self.votes.values() if v["decision"] == "approve"]

    @property
    def rejection(self) -> dict[str, Any] | None:
        return next((v for v in self.votes.values() if v["decision"] == "reject"), None)

    @property
    def done(self) -> bool:
        return self.rejection is not None or len(self.approvals) >= self.step.min_approvals

    def memo(self) -> dict[str, Any]:
        """The visibility memo: what the approvals listing shows without a query."""
        public = self.public()
        public["prompt"] = (self.prompt or "")[:MEMO_PROMPT_CHARS] or None
        public["votes"] = [{"approver": v["approver"], "decision": v["decision"]}
                           for v in self.votes.values()]  # fmt: skip
        return public

    def public(self) -> dict[str, Any]:
        """What `RunState.pending_approvals` and the visibility memo show."""
        extra = {"kind": "tool_call", "tool": self.tool} if self.tool is not None else {}
        return {
            **extra,
            "step_id": self.step.id,
            "prompt": self.prompt,
            "approvers": list(self.step.approvers),
            "min_approvals": self.step.min_approvals,
            "votes": list(self.votes.values()),
            "requested_at": self.requested_at.isoformat(),
            "deadline": self.deadline.isoformat(),
            "on_timeout": self.step.on_timeout,
            "edits": self.edits if self.step.min_approvals == 1 else None,
        }


class Approvals:
    def __init__(self, wf: RunHost) -> None:
        self.wf = wf
        self.pending: _Pending | None = None
        self.nonces: list[str] = []  # proofs already used in this run (no replays)

    # ------------------------------------------------------------ decisions
    def problem(self, decision: ApprovalDecision, *, proof: bool = True) -> tuple[str, str] | None:
        """Why `decision` cannot count now, as (error type, reason); None when it can.

        Types: CONFLICT (nothing waiting, already decided), FORBIDDEN (no valid proof,
        not an approver), INVALID (not approve/reject). Pure: an update validator runs it.
        """
        p = self.pending
        who = decision.approver
        verdict = decision.decision.strip().lower()
        if p is None or p.done:
            return contracts.E_APPROVAL_CONFLICT, "no approval step is waiting"
        if verdict not in ("approve", "reject"):
            what = f"unknown decision {decision.decision!r}: send 'approve' or 'reject'"
            return contracts.E_APPROVAL_INVALID, what
        if proof:
            bad = proofs.check(
                decision, workflow.info().workflow_id, p.step.id, p.requested_at,
                workflow.now(), tuple(self.nonces),
            )  # fmt: skip
            if bad is not None:
                return contracts.E_APPROVAL_FORBIDDEN, bad
        if not is_allowed(p.step.approvers, who, decision.groups):
            why = f"'{who}' is not an approver of step '{p.step.id}'"
            return contracts.E_APPROVAL_FORBIDDEN, why
        if normalise(who) in p.votes:
            return contracts.E_APPROVAL_CONFLICT, f"'{who}' already decided step '{p.step.id}'"
        wrong = self.edit_problems(decision)
        if wrong:
            return contracts.E_APPROVAL_INVALID, "; ".join(w["message"] for w in wrong[:5])
        return None

    def edit_problems(self, decision: ApprovalDecision) -> list[dict[str, str]]:
        """Why the decision's edit cannot be taken (none: it has no edit, or a good one)."""
        p = self.pending
        if decision.output is None or p is None:
            return []
        field_ = "output"
        if decision.decision.strip().lower() != "approve":
            return [{"field": field_, "message": "only an approval can carry an edited output"}]
        if p.step.min_approvals != 1:
            why = (f"step '{p.step.id}' needs {p.step.min_approvals} approvals: edits are "
                   "taken only where one approval decides (min_approvals 1)")  # fmt: skip
            return [{"field": field_, "message": why}]
        if p.edits is None:
            why = (
                f"step '{p.step.id}' allows no edits"
                if p.step.edits is False
                else f"step '{p.step.id}' has no earlier step whose output can be edited"
            )
            return [{"field": field_, "message": why}]  # fmt: skip
        done = self.wf.outputs.get(p.edits, {}).get("status") == "completed"
        if not done:
            why = f"step '{p.edits}' did not complete in this run: it has no output to edit"
            return [{"field": field_, "message": why}]
        target = next((s for s in self.wf.definition.steps if s.id == p.edits), None)
        return edit_problems(decision.output, target)

    def validate(self, decision: ApprovalDecision) -> None:
        """The `decide` update's validator: a refused update never reaches history."""
        found = self.problem(decision)
        if found is not None:
            kind, why = found
            wrong = self.edit_problems(decision) if kind == contracts.E_APPROVAL_INVALID else []
            details = [{"problems": wrong}] if wrong else []
            raise ApplicationError(why, *details, type=kind, non_retryable=True)

    def count_update(self, decision: ApprovalDecision) -> ApprovalOutcome:
        """The `decide` update's handler: count the (validated) decision, answer the tally."""
        self.validate(decision)  # same activation as the validator; kept for safety
        p = self.pending
        assert p is not None
        self._count(p, decision)
        return ApprovalOutcome(
            step_id=p.step.id,
            decision=decision.decision.strip().lower(),
            approver=decision.approver,
            comment=decision.comment,
            approvals=len(p.approvals),
            min_approvals=p.step.min_approvals,
            done=p.done,
            edited=decision.output is not None,
        )

    def decide(self, decision: ApprovalDecision) -> None:
        """The `approve` signal: count a decision with a valid proof; else record why not."""
        if not workflow.patched(PATCH_PROOFS):
            self._decide_unproven(decision)  # histories from before proofs replay as they ran
            return
        p = self.pending
        found = self.problem(decision)
        if found is None:
            assert p is not None
            self._count(p, decision)
        elif p is not None and found[0] == contracts.E_APPROVAL_CONFLICT and not p.done:
            key = normalise(decision.approver)
            self.wf.tracker.emit(
                EventType.APPROVAL_DUPLICATE,
                p.step.id,
                f"'{decision.approver}' already decided this step; counted once",
                approver=decision.approver,
                decision=decision.decision.strip().lower(),
                counted=p.votes[key]["decision"],
            )
        else:
            self._refuse(decision, p.step.id if p else None, found[1])

    def _count(self, p: _Pending, decision: ApprovalDecision) -> None:
        who = decision.approver
        if decision.proof is not None:
            self.nonces.append(decision.proof.nonce)
        vote: dict[str, Any] = {
            "approver": who,
            "decision": decision.decision.strip().lower(),
            "comment": decision.comment,
            "time": workflow.now().isoformat(),
        }
        if decision.output is not None and p.edits is not None:
            vote["edited"] = True
            p.edit = {"by": who, "output": decision.output, "time": vote["time"]}
        p.votes[normalise(who)] = vote
        self.wf.tracker.emit(
            EventType.APPROVAL_VOTE, p.step.id, f"{who}: {vote['decision']}", **vote
        )
        self.wf.tracker.state.pending_approvals = [p.public()]
        workflow.upsert_memo({MEMO_KEY: p.memo()})

    def _decide_unproven(self, decision: ApprovalDecision) -> None:
        """The rule before proofs (kept only so old histories replay unchanged)."""
        p = self.pending
        who = decision.approver
        verdict = decision.decision.strip().lower()
        if p is None or p.done:
            self._refuse(decision, p.step.id if p else None, "no approval step is waiting")
            return
        if verdict not in ("approve", "reject"):
            why = f"unknown decision {decision.decision!r}: send 'approve' or 'reject'"
            self._refuse(decision, p.step.id, why)
            return
        if not is_allowed(p.step.approvers, who, decision.groups):
            self._refuse(decision, p.step.id, f"'{who}' is not an approver of step '{p.step.id}'")
            return
        key = normalise(who)
        if key in p.votes:
            self.wf.tracker.emit(
                EventType.APPROVAL_DUPLICATE,
                p.step.id,
                f"'{who}' already decided this step; counted once",
                approver=who,
                decision=verdict,
                counted=p.votes[key]["decision"],
            )
            return
        self._count(p, decision)

    def _refuse(self, decision: ApprovalDecision, step_id: str | None, reason: str) -> None:
        self.wf.tracker.emit(
            EventType.APPROVAL_REFUSED,
            step_id,
            reason,
            approver=decision.approver,
            decision=decision.decision,
            time=workflow.now().isoformat(),
        )

    # ------------------------------------------------------------ the step
    async def run(self, step: ApprovalStep) -> tuple[Any, bool, str | None]:
        prompt = render_text(step.prompt, self.wf.namespace()) if step.prompt else None
        if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
            prompt = prompt[:MAX_PROMPT_CHARS] + " ...(truncated)"
        timeout = timeout_of(step)
        now = workflow.now()
        p = _Pending(step=step, prompt=prompt, requested_at=now, deadline=now + timeout,
                     edits=step.edit_target(self.wf.definition.steps))  # fmt: skip
        self.pending = p
        self._park(p)
        try:
            await self._notify(p, "requested")
            timed_out = await self._wait(p)
        except asyncio.CancelledError:  # run cancelled or over its time limit
            self._unpark()
            raise
        # not `finally`: on cache eviction the coroutine is closed (GeneratorExit) and
        # must not issue workflow commands
        self._unpark()
        return self._conclude(p, timed_out)

    async def tool_call(
        self, step: Step, rule: ToolPolicy, prompt: str, tool: dict[str, Any]
    ) -> dict[str, Any]:
        """Hold a tool call of `step` until `rule.approvers` decide; the outcome (never
        raises for a refusal: the model is told, and the step goes on)."""
        # one pending approval at a time: calls of one turn that all need approval queue.
        # Re-checked after each wake-up: several waiters can wake in the same pass, and
        # the first to run takes the slot (it sets `pending` before its next await).
        while self.pending is not None:
            await workflow.wait_condition(lambda: self.pending is None)
        gate = ApprovalStep(
            id=step.id, label=step.label, approvers=rule.approvers,
            min_approvals=rule.min_approvals, timeout=rule.timeout,
            on_timeout=rule.on_timeout, reminder=rule.reminder, prompt=prompt,
        )  # fmt: skip
        now = workflow.now()
        p = _Pending(step=gate, prompt=prompt, requested_at=now,
                     deadline=now + timeout_of(gate), tool=tool)  # fmt: skip
        self.pending = p
        self._park(p)
        self.wf.tracker.emit(
            EventType.TOOL_APPROVAL_REQUESTED, step.id, prompt, tool=tool["name"],
            arguments=tool["arguments"], call_id=tool["call_id"], policy=tool["policy"],
            approvers=list(rule.approvers), min_approvals=rule.min_approvals,
            deadline=p.deadline.isoformat(),
        )  # fmt: skip
        try:
            await self._notify(p, "requested")
            timed_out = await self._wait(p)
        except asyncio.CancelledError:
            self._unpark()
            raise
        self._unpark()
        rejection = p.rejection
        approvals = p.approvals
        if rejection is not None:
            decision, decider = "reject", rejection
        elif len(approvals) >= rule.min_approvals:
            decision, decider = "approve", approvals[-1]
        else:
            decision, decider = ("approve" if rule.on_timeout == "approve" else "reject"), None
        approvers: list[str] = [v["approver"] for v in approvals] if decision == "approve" else []
        out: dict[str, Any] = {
            "decision": decision,
            "approved": decision == "approve",
            "timed_out": timed_out and decider is None,
            "approver": decider["approver"] if decider else None,
            "comment": decider["comment"] if decider else None,
            "approvers": approvers,
            "votes": list(p.votes.values()),
        }
        if out["timed_out"]:
            message = f"tool call {tool['name']} timed out: {decision} (on_timeout)"
            decided_by = "timeout"
        elif decision == "reject":
            message = f"tool call {tool['name']} rejected by {out['approver']}"
            decided_by = str(out["approver"])
        else:
            decided_by = ", ".join(approvers)
            message = f"tool call {tool['name']} approved by {decided_by}"
        self.wf.tracker.emit(
            EventType.TOOL_APPROVAL_DECIDED, step.id, message, tool=tool["name"],
            call_id=tool["call_id"], arguments=tool["arguments"], policy=tool["policy"],
            decided_by=decided_by, **out,
        )  # fmt: skip
        return out

    def _park(self, p: _Pending) -> None:
        t = self.wf.tracker
        approvers = sorted({normalise(a) for a in p.step.approvers})
        t.set_status(RunStatus.awaiting_approval)
        workflow.upsert_search_attributes([contracts.SA_APPROVERS.value_set(approvers)])
        t.state.pending_approvals = [p.public()]
        workflow.upsert_memo({MEMO_KEY: p.memo()})
        t.emit(
            EventType.AWAITING_APPROVAL,
            p.step.id,
            p.prompt or f"step '{p.step.id}' waits for approval",
            approvers=list(p.step.approvers),
            min_approvals=p.step.min_approvals,
            deadline=p.deadline.isoformat(),
        )

    def _unpark(self) -> None:
        self.pending = None
        t = self.wf.tracker
        t.state.pending_approvals = []
        workflow.upsert_search_attributes([contracts.SA_APPROVERS.value_unset()])
        workflow.upsert_memo({MEMO_KEY: None})
        if not t.state.status.terminal:
            t.set_status(RunStatus.running)

    async def _wait(self, p: _Pending) -> bool:
        """Wait for enough decisions; True when the deadline passed first."""
        reminder = parse_duration(p.step.reminder) if p.step.reminder is not None else None
        while not p.done:
            remaining = p.deadline - workflow.now()
            if remaining <= timedelta(0):
                return True
            wait = min(remaining, reminder) if reminder else remaining
            summary = "approval reminder" if wait != remaining else "approval timeout"
            try:
                await workflow.wait_condition(
                    lambda: p.done, timeout=wait, timeout_summary=f"{p.step.id}: {summary}"
                )
            except TimeoutError:
                if p.done or workflow.now() >= p.deadline:
                    continue
                await self._remind(p)
        return False

    async def _remind(self, p: _Pending) -> None:
        p.reminders += 1
        waiting = ", ".join(p.step.approvers)
        self.wf.tracker.emit(
            EventType.APPROVAL_REMINDER,
            p.step.id,
            f"reminder {p.reminders}: step '{p.step.id}' still waits for {waiting}",
            reminder=p.reminders,
            approvers=list(p.step.approvers),
            approvals=len(p.approvals),
            deadline=p.deadline.isoformat(),
        )
        await self._notify(p, f"reminder-{p.reminders}")

    async def _notify(self, p: _Pending, kind: str) -> None:
        """Tell the approvers (log + webhook); a failed delivery never fails the step."""
        st = self.wf.tracker.state
        headline = "Approval requested" if kind == "requested" else "Reminder: approval waiting"
        req = NotifyRequest(
            run_id=st.run_id,
            step_id=p.step.id,
            message=f"{headline} for run {st.run_id}, step '{p.step.title}'"
            + (f": {p.prompt}" if p.prompt else ""),
            channel="approvals",
            data={"kind": f"approval_{kind.split('-')[0]}", **p.public()},
            idempotency_key=self.wf.idempotency_key(p.step.id, f"approval-{kind}"),
            delivery=Delivery(
                kind="approval",
                visit=p.requested_at.isoformat(),
                recipients=list(p.step.approvers),
                skip=sorted(p.votes),
                deadline=p.deadline,
                prompt=p.prompt,
            ),
        )
        why = await notify_people(self.wf, req, summary=f"{p.step.id}: approval {kind}")
        if why is not None:
            msg = f"could not notify approvers: {why}"
            self.wf.tracker.emit(EventType.APPROVAL_NOTIFY_FAILED, p.step.id, msg)

    # ------------------------------------------------------------ the outcome
    def _conclude(self, p: _Pending, timed_out: bool) -> tuple[Any, bool, str | None]:
        step = p.step
        rejection = p.rejection
        if rejection is not None:
            decision, decider = "reject", rejection
        elif len(p.approvals) >= step.min_approvals:
            decision, decider = "approve", p.approvals[-1]
        else:
            decision, decider = ("approve" if step.on_timeout == "approve" else "reject"), None
        out = {
            "decision": decision,
            "approved": decision == "approve",
            "timed_out": timed_out and decider is None,
            "approver": decider["approver"] if decider else None,
            "comment": decider["comment"] if decider else None,
            "decided_at": workflow.now().isoformat(),
            "votes": list(p.votes.values()),
            "approvals": len(p.approvals),
            "min_approvals": step.min_approvals,
            "prompt": p.prompt,
        }
        edited = decision == "approve" and decider is not None and p.edit is not None
        if edited:
            assert p.edit is not None and p.edits is not None
            out["edited_step"] = p.edits
            self._apply_edit(p.edits, p.edit)
        message = self._describe(p, out)
        self.wf.tracker.emit(
            EventType.APPROVAL_DECIDED,
            step.id,
            message,
            decision=decision,
            timed_out=out["timed_out"],
            approver=out["approver"],
            comment=out["comment"],
            on_timeout=step.on_timeout if out["timed_out"] else None,
            edited=edited,
            edited_step=p.edits if edited else None,
        )
        if out["timed_out"] and step.on_timeout == "fail":
            self._keep_output(step.id, out)
            raise fail(contracts.E_TIMEOUT, message, step.id, approval=out)
        if decision == "approve":
            return out, False, None
        if step.on_reject:
            return out, False, step.on_reject
        self._keep_output(step.id, out)
        raise fail(contracts.E_REJECTED, message, step.id, approval=out)

    def _apply_edit(self, step_id: str, edit: dict[str, Any]) -> None:
        """The approver's output replaces the gated step's for every later step (templates
        read `steps.<id>.output`); the state keeps who edited it and the original."""
        self.wf.outputs[step_id] = {**self.wf.outputs[step_id], "output": edit["output"]}
        self.wf.tracker.step_edited(step_id, edit["output"], edit["by"])

    def _describe(self, p: _Pending, out: dict[str, Any]) -> str:
        step = p.step
        if out["timed_out"]:
            after = (
                "24h (the default timeout)"
                if step.timeout is None
                else step.timeout
                if isinstance(step.timeout, str)
                else str(timeout_of(step))
            )
            then = {"reject": "rejected", "approve": "approved", "fail": "failed"}[step.on_timeout]
            return f"approval of step '{step.id}' timed out after {after}: {then} (on_timeout)"
        if out["decision"] == "reject":
            why = f": {out['comment']}" if out["comment"] else ""
            return f"step '{step.id}' rejected by {out['approver']}{why}"
        names = ", ".join(v["approver"] for v in p.approvals)
        edited = f" (output of '{out['edited_step']}' edited)" if out.get("edited_step") else ""
        return f"step '{step.id}' approved by {names}{edited}"

    def _keep_output(self, step_id: str, out: dict[str, Any]) -> None:
        """A failed approval step still shows who decided what, for audit."""
        self.wf.tracker.step(step_id).output = out
