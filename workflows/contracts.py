"""Stable names shared by the workflow, the worker and the gateway.

Activity names and search attribute keys are part of history: renaming one breaks
replay of every run that used it, so they live here, once, and never change.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

# Activities (implemented in activities/, called by name from workflows/)
LLM_ACTIVITY = "duratask.llm.complete"
TOOL_ACTIVITY = "duratask.tool.call"
MCP_LIST_ACTIVITY = "duratask.mcp.list_tools"
NOTIFY_ACTIVITY = "duratask.notify"
RESOLVE_BUNDLE_ACTIVITY = "duratask.store.resolve_bundle"
USAGE_ACTIVITY = "duratask.store.record_usage"  # daily budgets (workflows/budget.py)

# Custom search attributes: the operator's filters in the Temporal Web UI
SA_DEFINITION = SearchAttributeKey.for_keyword("DurataskDefinition")
SA_STATUS = SearchAttributeKey.for_keyword("DurataskStatus")
SA_OWNER = SearchAttributeKey.for_keyword("DurataskOwner")
SA_TEAM = SearchAttributeKey.for_keyword("DurataskTeam")  # the owner's team (docs/security.md)
SA_TRIGGER = SearchAttributeKey.for_keyword("DurataskTrigger")
SA_PRIORITY = SearchAttributeKey.for_keyword("DurataskPriority")
SA_PARENT = SearchAttributeKey.for_keyword("DurataskParent")
SA_SCHEDULE = SearchAttributeKey.for_keyword("DurataskSchedule")
SA_APPROVERS = SearchAttributeKey.for_keyword_list("DurataskApprovers")
SA_TOKENS = SearchAttributeKey.for_int("DurataskTokens")
SA_COST = SearchAttributeKey.for_float("DurataskCostUsd")
SA_DURATION_MS = SearchAttributeKey.for_int("DurataskDurationMs")
# True when the run's tokens/cost include estimates (a model server sent no usage)
SA_USAGE_ESTIMATED = SearchAttributeKey.for_bool("DurataskUsageEstimated")

SEARCH_ATTRIBUTES: list[SearchAttributeKey[Any]] = [
    SA_DEFINITION,
    SA_STATUS,
    SA_OWNER,
    SA_TRIGGER,
    SA_PRIORITY,
    SA_PARENT,
    SA_SCHEDULE,
    SA_APPROVERS,
    SA_TOKENS,
    SA_COST,
    SA_DURATION_MS,
    SA_TEAM,
    SA_USAGE_ESTIMATED,
]

# Error codes (RunError.code / ApplicationError.type)
E_INVALID_INPUT = "INVALID_INPUT"
E_TEMPLATE = "TEMPLATE_ERROR"
E_NOT_IMPLEMENTED = "STEP_NOT_AVAILABLE"
E_MAX_STEPS = "MAX_STEPS_EXCEEDED"
E_STEP_FAILED = "STEP_FAILED"
E_TOOL = "TOOL_ERROR"
E_TIMEOUT = "TIMEOUT"
E_CANCELLED = "CANCELLED"
E_REJECTED = "REJECTED"
E_DEFINITION_NOT_FOUND = "DEFINITION_NOT_FOUND"
E_SUBTASK_DEPTH = "SUBTASK_DEPTH_EXCEEDED"
# The attempt ended because its worker went away (shutdown, or lost: heartbeat timeout);
# not a failure of the work, so not counted against the step's retries (workflows/retries.py)
E_WORKER_SHUTDOWN = "WorkerShutdown"
HEARTBEAT_TIMEOUT_TYPE = "TemporalTimeout:Heartbeat"
E_WORKER_LOST = "WORKER_LOST"
E_TOOL_POLICY = "TOOL_POLICY_ERROR"  # a tool policy's `when` failed (docs/approvals.md)
E_BUDGET = "BUDGET_EXCEEDED"  # a token or cost limit reached (docs/models-and-tools.md#budgets)

# Why a `decide` update was refused (ApplicationError.type): the gateway maps them
# to 409, 403 and 422.
E_APPROVAL_CONFLICT = "APPROVAL_CONFLICT"
E_APPROVAL_FORBIDDEN = "APPROVAL_FORBIDDEN"
E_APPROVAL_INVALID = "APPROVAL_INVALID"
