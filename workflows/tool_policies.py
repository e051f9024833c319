"""Tool policies: rules that allow, deny or hold for approval an agent's tool calls.

Why here, in the workflow: a rule decides on the call's arguments, which only exist
once the model has produced them, and a call held for approval must wait durably (no
worker slot, survives restarts) exactly like an approval step. So the gate runs inside
`TaskRunWorkflow.call_tool`, before the tool's activity is scheduled: evaluation is
pure (the sandboxed expression language over `args`, `tool`, `input`, `steps`, `run`),
and an approval reuses the approval-step machinery (`workflows/approvals.py`): the same
approvers rule, `min_approvals`, timeout, reminders, notification, proof check on every
decision and the same `decide` Update / `approve` signal, so no new way in is opened.

Order: the organisation's rules (settings, pinned in the run's config at start) before
the definition's own; the first rule that matches decides; no match allows the call.
A rule whose `when` cannot be evaluated fails the step (fail closed): it never allows
a call by accident and never loops the workflow task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio import workflow

from workflows import contracts
from workflows.errors import fail
from workflows.events import EventType
from workflows.expressions import ExpressionError
from workflows.models import ToolResult
from workflows.tool_rules import Match, describe_call, first_match, shown_args

if TYPE_CHECKING:
    from workflows.definition import Step, ToolPolicy
    from workflows.host import RunHost

PATCH_TOOL_POLICIES = "tool-policies"  # a matching rule may deny or park the call


class ToolGate:
    """Applies the rules to one tool call of a run (`TaskRunWorkflow.call_tool`)."""

    def __init__(self, wf: RunHost) -> None:
        self.wf = wf

    def _rules(self) -> tuple[list[ToolPolicy], list[ToolPolicy]]:
        return self.wf.inp.config.tool_policies, self.wf.definition.tool_policies

    async def check(
        self, step: Step, tool: str, args: dict[str, Any], call_id: str
    ) -> ToolResult | None:
        """None: run the call. A ToolResult with `error`: answer the model with it."""
        org, own = self._rules()
        if not org and not own:
            return None
        try:
            found = first_match(org, own, tool, args, self.wf.namespace())
        except ExpressionError as e:
            raise fail(
                contracts.E_TOOL_POLICY, f"tool policy error: {e}", step.id, tool=tool
            ) from None
        if found is None or found.rule.action == "allow":
            return None
        if not workflow.patched(PATCH_TOOL_POLICIES):
            return None  # a run from before tool policies: it ran every call
        if found.rule.action == "deny":
            return self._deny(step, tool, args, call_id, found)
        return await self._approve(step, tool, args, call_id, found)

    def _deny(
        self, step: Step, tool: str, args: dict[str, Any], call_id: str, found: Match
    ) -> ToolResult:
        why = found.rule.reason or "not allowed"
        msg = f"the call to '{tool}' was refused by policy ({found.where}): {why}"
        self.wf.tracker.emit(
            EventType.TOOL_APPROVAL_DECIDED, step.id, msg, tool=tool, call_id=call_id,
            arguments=shown_args(args), decision="deny", approved=False, timed_out=False,
            decided_by="policy", policy=found.where, approver=None, approvers=[],
        )  # fmt: skip
        return ToolResult(error=msg)

    async def _approve(
        self, step: Step, tool: str, args: dict[str, Any], call_id: str, found: Match
    ) -> ToolResult | None:
        rule = found.rule
        shown = shown_args(args)
        call = describe_call(tool, args)
        prompt = f"Allow the agent's tool call: {call}" + (
            f" ({rule.reason})" if rule.reason else ""
        )
        tool_info = {"name": tool, "arguments": shown, "call_id": call_id, "policy": found.where}
        out = await self.wf.approvals.tool_call(step, rule, prompt, tool_info)
        if out["approved"]:
            return None
        if out["timed_out"]:
            when = rule.timeout if rule.timeout is not None else "24h"
            msg = f"the call to '{tool}' was not approved within {when}: refused (on_timeout)"
        else:
            why = f": {out['comment']}" if out["comment"] else ""
            msg = f"the call to '{tool}' was rejected by {out['approver']}{why}"
        return ToolResult(error=msg)
