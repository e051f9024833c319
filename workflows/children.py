"""`sub_task` and `parallel` steps: child TaskRunWorkflows.

Not built yet (issue: sub-tasks and parallel branches); a run reaching one of these
steps fails with a clear STEP_NOT_AVAILABLE error rather than silently succeeding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workflows import contracts
from workflows.definition import ParallelStep, SubTaskStep
from workflows.errors import fail

if TYPE_CHECKING:
    from workflows.run_workflow import TaskRunWorkflow


class Children:
    def __init__(self, wf: TaskRunWorkflow) -> None:
        self.wf = wf

    async def run(self, step: SubTaskStep | ParallelStep) -> tuple[Any, bool, str | None]:
        raise fail(
            contracts.E_NOT_IMPLEMENTED,
            f"'{step.action}' steps are not available in this version of duratask yet",
            step.id,
        )
