"""The surface the workflow's helpers may use: `RunHost`, the run they serve.

`AgentLoop`, `Approvals` and `Children` each handle one kind of step for
`TaskRunWorkflow`. They get the workflow as a `RunHost` rather than the class itself,
so what they may read or call is declared in one place, checked by mypy, and a change
to the workflow that would break a helper shows up here first. Helpers read the run's
input, definition and outputs and call the workflow's activity plumbing; they never
replace the workflow's own state (only the workflow's `__init__` sets it up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, Protocol

if TYPE_CHECKING:
    from temporalio.common import Priority as TemporalPriority

    from workflows.approvals import Approvals
    from workflows.budget import Budget
    from workflows.definition import Step, TaskDefinition
    from workflows.mcp_tools import McpToolSpec
    from workflows.models import (
        AgentCarry,
        CancelRequest,
        DefinitionBundle,
        Priority,
        RunInput,
        RunState,
        ToolResult,
    )
    from workflows.tracker import RunTracker


class RunHost(Protocol):
    """What `TaskRunWorkflow` offers the helpers of its steps."""

    # the run's data (read by the helpers; `outputs` is the templates' `steps.<id>`)
    inp: RunInput
    definition: TaskDefinition
    tracker: RunTracker
    outputs: dict[str, dict[str, Any]]
    executions: dict[str, int]
    priority: Priority
    budget: Budget  # token / cost limits, checked after every model call
    approvals: Approvals  # approval steps, and tool calls a policy holds for approval

    # the workflow's own entry points: children run the same workflow type
    # (`type(host).run`) and are told of a cancel with its signal
    async def run(self, inp: RunInput) -> RunState: ...

    def request_cancel(self, req: CancelRequest) -> None: ...

    @property
    def bundle(self) -> DefinitionBundle: ...

    def namespace(self) -> dict[str, Any]:
        """What templates and conditions see: `input`, `steps`, `run`."""
        ...

    def idempotency_key(self, step_id: str, call_id: str) -> str: ...

    def temporal_priority(self) -> TemporalPriority: ...

    async def activity(
        self,
        name: str,
        arg: Any,
        result_type: type,
        step: Step,
        summary: str,
        max_attempts: int | None = None,
    ) -> Any:
        """Run one activity for `step` with its timeout and retry policy (at most
        `max_attempts` of its retry budget when given)."""
        ...

    async def call_tool(
        self, step: Step, tool: str, args: dict[str, Any], call_id: str
    ) -> ToolResult: ...

    async def pin_mcp_tools(self, step: Step, allowed: list[str]) -> list[McpToolSpec]:
        """The MCP tools `allowed` names, listed once per run and kept in its state."""
        ...

    async def continue_as_new(
        self, agent: AgentCarry | None = None, next_step: str | None = None
    ) -> NoReturn: ...
