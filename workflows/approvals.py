"""`approval` steps and the `approve` signal.

Not built yet (issue: human approvals); a run reaching an approval step fails with
a clear STEP_NOT_AVAILABLE error, and any decision signal is recorded as refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workflows import contracts
from workflows.definition import ApprovalStep
from workflows.errors import fail
from workflows.models import ApprovalDecision

if TYPE_CHECKING:
    from workflows.run_workflow import TaskRunWorkflow


class Approvals:
    def __init__(self, wf: TaskRunWorkflow) -> None:
        self.wf = wf

    def decide(self, decision: ApprovalDecision) -> None:
        self.wf.tracker.emit(
            "approval.refused",
            None,
            "no approval step is waiting",
            approver=decision.approver,
            decision=decision.decision,
        )

    async def run(self, step: ApprovalStep) -> tuple[Any, bool, str | None]:
        raise fail(
            contracts.E_NOT_IMPLEMENTED,
            f"'{step.action}' steps are not available in this version of duratask yet",
            step.id,
        )
