"""Run models: the workflow's input, its state, events, and every signal, update and
activity payload. One pydantic model per boundary so fields can be added compatibly.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.contrib.workflow_streams import WorkflowStreamState

from workflows.definition import ModelSpec, TaskDefinition, ToolPolicy
from workflows.mcp_tools import McpToolSpec


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Priority(StrEnum):
    critical = "critical"
    urgent = "urgent"
    high = "high"
    normal = "normal"
    low = "low"

    @property
    def key(self) -> int:
        """Temporal priority key: 1 is served first."""
        return {"critical": 1, "urgent": 2, "high": 3, "normal": 4, "low": 5}[self.value]


class RunStatus(StrEnum):
    scheduled = "scheduled"
    queued = "queued"
    running = "running"
    awaiting_approval = "awaiting_approval"
    awaiting_input = "awaiting_input"
    awaiting_subtask = "awaiting_subtask"
    awaiting_parallel = "awaiting_parallel"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.completed, RunStatus.failed, RunStatus.cancelled)


class StepStatus(StrEnum):
    pending = "pending"
    running = "running"
    completed = "completed"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"


class Trigger(StrEnum):
    api = "api"
    cli = "cli"
    schedule = "schedule"
    retry = "retry"
    subtask = "subtask"
    tool = "tool"


# ---------------------------------------------------------------- run input


class BundledDefinition(_Model):
    definition: TaskDefinition
    version: int


class DefinitionBundle(_Model):
    """The definition a run executes, pinned, plus every definition it references."""

    root: BundledDefinition
    others: dict[str, BundledDefinition] = Field(default_factory=dict)

    def get(self, definition_id: str) -> BundledDefinition | None:
        if definition_id == self.root.definition.id:
            return self.root
        return self.others.get(definition_id)


class RunMeta(_Model):
    owner: str | None = None
    team: str | None = None  # one of the owner's groups: the team shares the run
    priority: Priority = Priority.normal
    trigger: Trigger = Trigger.api
    schedule_id: str | None = None
    idempotency_key: str | None = None
    retry_of: str | None = None
    retry_count: int = 0
    parent_run_id: str | None = None
    parent_step_id: str | None = None
    depth: int = 0
    created_at: datetime | None = None
    created_by: str | None = None
    scheduled_for: datetime | None = None
    source: dict[str, str] = Field(default_factory=dict)  # session/conversation/message ids
    # a re-run (docs/runs.md#re-run-from-a-step): the run it reuses outputs of, and the
    # first step it executes again
    rerun_of: str | None = None
    rerun_from: str | None = None


class DailyLimits(_Model):
    """Usage allowed per UTC day (an owner's runs together, or a definition's)."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None


class RunConfig(_Model):
    """Worker-independent knobs fixed at start, so a replay sees the same values."""

    default_model: ModelSpec = Field(
        default_factory=lambda: ModelSpec(provider="scripted", name="echo")
    )
    # the run's own model settings (POST /v1/runs `model`), over the definition's and step's
    model_override: ModelSpec | None = None
    max_output_bytes: int = 256_000
    max_subtask_depth: int = 8
    max_events: int = 500
    # Agent loop: continue-as-new after this many model calls in one execution (None:
    # only when Temporal suggests it), drift alert after this many turns without a plan
    # step done, and how much of each conversation the run state shows.
    continue_as_new_after_turns: int | None = None
    drift_after_turns: int = 3
    max_conversation_messages: int = 40
    max_conversation_chars: int = 2000
    # stream items carried across a continue-as-new (older ones stay in `RunState.events`)
    stream_carry_limit: int = 1000
    # attempts of one activity call that workers going away may cut short before the
    # step fails with WORKER_LOST (they do not use the step's retry budget)
    max_interruptions: int = 10
    # an interpreted run continues as new between steps past this history length / size
    continue_as_new_history_events: int = 10_000
    continue_as_new_history_bytes: int = 10_000_000
    # budgets (docs/models-and-tools.md#budgets): what a run whose definition does not say
    # `limits.on_budget` does on reaching a limit
    on_budget: Literal["fail", "approve"] = "fail"
    # daily budgets from the settings: per owner (each owner's runs together) and per
    # definition id ("*": each definition); set, every model call is recorded in the store
    daily_per_owner: DailyLimits | None = None
    daily_per_definition: dict[str, DailyLimits] = Field(default_factory=dict)
    # organisation-wide tool policies (settings `tool_policies`), tried before the
    # definition's own (docs/approvals.md#tool-policies)
    tool_policies: list[ToolPolicy] = Field(default_factory=list)


class AgentCarry(_Model):
    """An agent loop in flight, carried across continue-as-new."""

    step_id: str
    messages: list[ChatMessage] = Field(default_factory=list)
    calls: int = 0
    turns_since_progress: int = 0
    steers: list[Intervention] = Field(default_factory=list)
    collected: list[Intervention] = Field(default_factory=list)
    followups: list[Intervention] = Field(default_factory=list)


class RunCarry(_Model):
    """Everything a run needs to go on in a new execution (continue-as-new)."""

    state: RunState
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    executions: dict[str, int] = Field(default_factory=dict)
    inputs: dict[str, Any] = Field(default_factory=dict)
    current_step: str
    agent: AgentCarry | None = None
    # continued between steps: `current_step` has not started yet (else it is resumed)
    between_steps: bool = False
    # steps executed so far, against `limits.max_steps`; the run state's output budget
    executed: int = 0
    output_bytes: int = 0
    step_durations: list[int] = Field(default_factory=list)


class RunInput(_Model):
    # None: "the latest version at each firing" (schedules): the workflow resolves
    # `definition_id` / `version` through the store activity before its first step.
    bundle: DefinitionBundle | None = None
    definition_id: str | None = None
    version: int | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    meta: RunMeta = Field(default_factory=RunMeta)
    config: RunConfig = Field(default_factory=RunConfig)
    # inline `parallel` branches: the parent's step outputs their templates refer to
    parent_outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # The event stream carried across continue-as-new (None on a fresh start).
    stream_state: WorkflowStreamState | None = None
    carry: RunCarry | None = None  # set only by continue-as-new
    # a re-run: recorded outputs of the original run's steps before `meta.rerun_from`,
    # taken as they are instead of executing those steps again
    reused: dict[str, Any] = Field(default_factory=dict)


class ResolveBundleRequest(_Model):
    definition_id: str
    version: int | None = None


def pending_bundle(inp: RunInput) -> DefinitionBundle:
    """What a run shows before its unpinned definition is resolved: no steps yet."""
    if inp.bundle is not None:
        return inp.bundle
    definition = TaskDefinition.model_construct(id=inp.definition_id or "unknown", steps=[])
    return DefinitionBundle(
        root=BundledDefinition.model_construct(definition=definition, version=inp.version or 0)
    )


# ---------------------------------------------------------------- run state


class Usage(_Model):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    # True when some of these figures are estimates: the model server reported no usage
    estimated: bool = False

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost_usd = round(self.cost_usd + other.cost_usd, 8)
        self.estimated = self.estimated or other.estimated

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class RunError(_Model):
    code: str
    message: str
    step_id: str | None = None
    retry_after: float | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class RunEvent(_Model):
    type: str
    time: datetime
    step_id: str | None = None
    message: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class StreamEvent(_Model):
    """One item of a run's live event stream, as the gateway serves it (SSE id = offset)."""

    offset: int
    type: str
    time: datetime
    run_id: str
    step_id: str | None = None
    message: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class StepModel(_Model):
    """The model that answered a step's latest call: which endpoint and model, and which
    entry of the fallback chain it was (0: the step's own model)."""

    endpoint: str | None = None
    provider: str | None = None
    name: str | None = None
    fallback: int = 0


class RateLimitWait(_Model):
    """A model call waiting for its turn under an endpoint's rate limit: the slot it holds
    (`reservation`) opens at `until` (docs/models-and-tools.md#rate-limits)."""

    endpoint: str
    until: datetime
    wait_s: float
    reservation: int
    limit: str  # the limit that made it wait: requests_per_minute or tokens_per_minute


class StepState(_Model):
    id: str
    action: str
    label: str | None = None
    status: StepStatus = StepStatus.pending
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    # activity attempts Temporal ran for this step (its executions plus their retries);
    # `interruptions`: how many of them a worker shutdown or loss cut short (not counted
    # against the step's retry budget, see workflows/retries.py)
    attempts: int = 0
    interruptions: int = 0
    output: Any = None
    truncated: bool = False
    error: RunError | None = None
    usage: Usage = Field(default_factory=Usage)
    children: list[str] = Field(default_factory=list)
    # llm_call: the latest messages (bounded, long contents cut) and model calls made
    conversation: list[ChatMessage] = Field(default_factory=list)
    model_calls: int = 0
    # a re-run took this step's output from the original run (`RunState.rerun_of`)
    reused: bool = False
    # an approver replaced this output when approving (docs/approvals.md): who, and the
    # output as the step produced it
    edited_by: str | None = None
    original_output: Any = None
    # llm_call: the model that answered the latest call (a fallback shows here), and the
    # endpoint rate limit a call is waiting on right now
    model: StepModel | None = None
    waiting_for_rate_limit: RateLimitWait | None = None


class ChildRun(_Model):
    """One child run (a `sub_task` step or a `parallel` branch) as its parent sees it."""

    run_id: str
    step_id: str
    definition_id: str
    branch: str | None = None
    status: RunStatus = RunStatus.running
    error: RunError | None = None


class Progress(_Model):
    percent: int = 0
    current_step: str | None = None
    estimated_time_remaining_ms: int | None = None


class PlanItem(_Model):
    step_id: str
    label: str
    done: bool = False


class AgentPlanItem(_Model):
    """One numbered step of the plan the model wrote (`plan` tool or a numbered reply)."""

    number: int
    text: str
    done: bool = False
    step_id: str | None = None


class RunState(_Model):
    run_id: str
    definition_id: str
    definition_version: int
    status: RunStatus = RunStatus.queued
    current_step: str | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepState] = Field(default_factory=list)
    result: Any = None
    error: RunError | None = None
    progress: Progress = Field(default_factory=Progress)
    plan: list[PlanItem] = Field(default_factory=list)
    agent_plan: list[AgentPlanItem] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    events: list[RunEvent] = Field(default_factory=list)
    pending_approvals: list[dict[str, Any]] = Field(default_factory=list)
    children: list[ChildRun] = Field(default_factory=list)
    # metadata
    owner: str | None = None
    team: str | None = None
    priority: Priority = Priority.normal
    trigger: Trigger = Trigger.api
    schedule_id: str | None = None
    parent_run_id: str | None = None
    retry_of: str | None = None
    retry_count: int = 0
    execution_count: int = 1
    # how many times this run continued as new to keep its history small
    continued_as_new: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None
    scheduled_for: datetime | None = None
    cancel_reason: str | None = None
    temporal_ui_url: str | None = None
    # where the run came from (RunMeta.source: chat conversation/message ids, a url, ...)
    source: dict[str, str] = Field(default_factory=dict)
    # MCP tools pinned when the run first needed them (docs/mcp.md): later turns, a
    # continue-as-new and a replay all offer the model exactly these
    mcp_tools: list[McpToolSpec] = Field(default_factory=list)
    mcp_listed: list[str] = Field(default_factory=list)  # the servers already listed
    rerun_of: str | None = None
    rerun_from: str | None = None
    # the run's budget (limits, what approvers raised, whether the run waits for a raise)
    budget: BudgetState | None = None
    # `input` steps waiting for a value: step id -> {"schema", "prompt"}
    pending_inputs: dict[str, dict[str, Any]] = Field(default_factory=dict)

    def step(self, step_id: str) -> StepState:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


class BudgetState(_Model):
    """The run's spending limits as they stand (the definition's, raised by approvers)."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    on_budget: Literal["fail", "approve"] = "fail"
    # waiting for an approver to raise the limit: what was reached (None: not waiting)
    exceeded: str | None = None
    raises: list[dict[str, Any]] = Field(default_factory=list)
    # daily budgets: the run's usage already recorded in the store, calls recorded, and
    # whether an approver let the run go on past a daily limit
    recorded_tokens: int = 0
    recorded_cost_usd: float = 0.0
    records: int = 0
    daily_waived: bool = False


# ---------------------------------------------------------------- signals/updates


class CancelRequest(_Model):
    reason: str = ""
    requested_by: str | None = None


class PriorityChange(_Model):
    priority: Priority
    by: str | None = None  # who changed it (recorded in the run's events)


class ApprovalProof(_Model):
    """The gateway's HMAC over a decision (workflows/proofs.py); never holds the key."""

    step_id: str = ""
    nonce: str = ""
    issued_at: str = ""
    mac: str = ""


class ApprovalDecision(_Model):
    # Plain strings checked by the workflow (workflows/approvals.py), so a malformed
    # raw `temporal workflow signal` is recorded as refused instead of dropped unseen.
    decision: str  # approve | reject
    approver: str = ""
    comment: str | None = None
    groups: list[str] = Field(default_factory=list)
    proof: ApprovalProof | None = None
    # an approval with an edit: the output the gated step is to have from now on
    # (docs/approvals.md#approving-with-an-edit); None: no edit. Covered by the proof.
    output: Any = None


class ApprovalOutcome(_Model):
    """What the `decide` update answers: the decision was counted."""

    step_id: str
    decision: str
    approver: str
    comment: str | None = None
    approvals: int
    min_approvals: int
    done: bool
    edited: bool = False  # the decision carried an edit the run took


class BudgetRaise(_Model):
    """`raise_budget` Update: new run limits (only those given change). The gateway sends
    it, signed, for a caller with `tasks:approve` who may see the run."""

    max_tokens: int | None = None
    max_cost_usd: float | None = None
    by: str = ""
    # what the caller claimed before raises were signed; no longer believed: only
    # `proof` (the gateway's HMAC, workflows/proofs.py) vouches for the raise
    scopes: list[str] = Field(default_factory=list)
    comment: str | None = None
    proof: ApprovalProof | None = None


class UsageRecordRequest(_Model):
    """Record one model call's usage for the daily budgets; answer today's totals."""

    key: str
    run_id: str
    owner: str | None = None
    definition_id: str
    tokens: int
    cost_usd: float


class DailyUsage(_Model):
    attempt: int = 1
    day: str
    owner_tokens: int = 0
    owner_cost_usd: float = 0.0
    definition_tokens: int = 0
    definition_cost_usd: float = 0.0


class InputSubmission(_Model):
    """`submit_input` Update: the value of a waiting `input` step."""

    step_id: str
    value: Any = None
    by: str = ""


class RunComment(_Model):
    """A comment, note or handoff written on a running run (the thread lives in the store;
    this puts it in the run's events and live stream too)."""

    comment_id: int | None = None
    kind: Literal["comment", "note", "handoff"] = "comment"
    author: str
    body: str
    to: str | None = None


class Intervention(_Model):
    mode: Literal["steer", "collect", "followup"]
    message: str
    sender: str | None = None


# ---------------------------------------------------------------- activity payloads


class ToolCall(_Model):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ChatMessage(_Model):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


class LlmRequest(_Model):
    run_id: str
    step_id: str
    model: ModelSpec
    messages: list[ChatMessage]
    tools: list[str] = Field(default_factory=list)
    turn: int = 0
    max_output_bytes: int = 256_000
    steers: int = 0  # how many times a steer restarted this call
    tool_specs: list[McpToolSpec] = Field(default_factory=list)  # pinned MCP tools offered
    # a rate-limit slot the workflow waited for (`LlmResponse.rate_limited`): call at once
    reservation: int | None = None
    # a fallback model comes next: a Retry-After longer than this moves on to it
    fallback_wait_s: float | None = None


class LlmResponse(_Model):
    attempt: int = 1  # the activity attempt that produced it (set by the worker)
    text: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str | None = None
    model: str | None = None
    truncated: bool = False
    endpoint: str | None = None  # the named endpoint that answered (None: scripted)
    # no model call was made: the endpoint's rate limit has a slot for it at `until`
    rate_limited: RateLimitWait | None = None


class ToolRequest(_Model):
    run_id: str
    step_id: str
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    allowed: list[str] = Field(default_factory=list)
    idempotency_key: str
    owner: str | None = None
    max_output_bytes: int = 256_000


class ToolResult(_Model):
    attempt: int = 1  # the activity attempt that produced it (set by the worker)
    output: Any = None
    error: str | None = None
    truncated: bool = False


class McpListRequest(_Model):
    run_id: str
    step_id: str
    servers: list[str]


class McpListResult(_Model):
    tools: list[McpToolSpec] = Field(default_factory=list)


class Delivery(_Model):
    """A request people must act on (an approval or an `input` step): the notify activity
    sends each recipient a signed link to its decision page (docs/approvals.md#delivery).

    Only what names the request is here; the links are made in the activity, with a key
    the workflow never sees, so no link ever enters history."""

    kind: Literal["approval", "input"]
    visit: str  # when the step started waiting (ISO): a link is good for this visit only
    recipients: list[str] = Field(default_factory=list)  # identities and `group:<name>`
    skip: list[str] = Field(default_factory=list)  # who already decided (lower-cased)
    deadline: datetime | None = None  # no link outlives the request
    prompt: str | None = None


class NotifyRequest(_Model):
    run_id: str
    step_id: str | None = None
    message: str
    channel: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str
    delivery: Delivery | None = None  # an approval or input request: links for its people


class NotifyResult(_Model):
    attempt: int = 1  # the activity attempt that produced it (set by the worker)
    delivered: list[str] = Field(default_factory=list)


RunState.model_rebuild()
RunCarry.model_rebuild()
RunInput.model_rebuild()
