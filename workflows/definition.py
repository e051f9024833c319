"""The task definition: the contract engineers write in YAML or JSON.

These pydantic models are the schema (the gateway serves them as JSON Schema), the
parse step of the compiler, and what a run receives pinned in its bundle. Fields
are only ever added, never renamed, so old definitions and old histories stay valid.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows.durations import parse_duration

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
STEP_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$"
END = "end"

Duration = str | int | float


def _check_duration(value: Duration | None) -> Duration | None:
    if value is not None:
        parse_duration(value)
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class InputSpec(_Model):
    type: Literal["string", "number", "integer", "boolean", "object", "array", "any"] = "string"
    required: bool = False
    default: Any = None
    description: str | None = None
    enum: list[Any] | None = None


class ScriptedReply(_Model):
    """One scripted model reply: text, tool calls, or both; `delay` in seconds."""

    text: str | None = None
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    delay: float = 0.0
    error: dict[str, Any] | None = None  # {"status": 429, "message": ..., "retry_after": 1}


class ModelSpec(_Model):
    """Which model a call uses and how; every field left out is taken from the level below.

    Levels, lowest first: the endpoint's defaults (settings), the definition's `model`,
    the step's `model`, the run's override. Merging is field by field on what a level
    sets (None is "not set"), so a definition read back from the store, where every
    field is written out, merges exactly like the one that was posted.
    """

    endpoint: str | None = None  # a named endpoint from settings (`model_endpoints`)
    provider: str | None = None  # the wire protocol: openai, anthropic, scripted
    name: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    stream: bool | None = None  # None: streamed
    # a reply cut off by the token limit (finish_reason `length`): fail the step, or keep it
    on_length: Literal["fail", "accept"] | None = None
    # `scripted` provider: replies in order (name `script`); `echo` needs none.
    script: list[ScriptedReply] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    # Models tried in order when the one before fails with a transient error (429, 5xx,
    # a connection failure, a timeout); each entry is merged over this model
    # (docs/models-and-tools.md#fallback-models). None: inherited; []: no fallback.
    fallback: list[ModelSpec] | None = None
    # attempts a model that has a fallback gets before the next one is tried (default 2)
    fallback_after: int | None = Field(default=None, ge=1, le=100)
    # a Retry-After longer than this moves to the next model at once (default 30s)
    fallback_wait: Duration | None = None

    _d = field_validator("fallback_wait")(_check_duration)

    @field_validator("fallback")
    @classmethod
    def _flat_fallback(cls, value: list[ModelSpec] | None) -> list[ModelSpec] | None:
        for entry in value or []:
            if entry.fallback:
                raise ValueError("a fallback model cannot have fallbacks of its own")
        return value

    @property
    def streamed(self) -> bool:
        return self.stream is not False

    def chain(self) -> list[ModelSpec]:
        """This model, then each fallback merged over it: the order calls try them in.
        Every entry is complete (no `fallback` of its own)."""
        primary = self.model_copy(update={"fallback": None})
        return [primary, *(f.merged_over(primary) for f in self.fallback or [])]

    def merged_over(self, base: ModelSpec | None) -> ModelSpec:
        """This spec over `base`: each field this one sets wins; `options` merge by key."""
        if base is None:
            return self
        data: dict[str, Any] = {}
        for field in type(self).model_fields:
            mine, theirs = getattr(self, field), getattr(base, field)
            if field == "options":
                data[field] = {**theirs, **mine}
            else:
                data[field] = mine if mine is not None else theirs
        other_endpoint = self.endpoint is not None and self.endpoint != base.endpoint
        other_provider = self.provider is not None and self.provider != base.provider
        if other_endpoint and self.provider is None:
            data["provider"] = None  # another endpoint: its own kind, not the base's provider
        if other_provider and self.endpoint is None:
            data["endpoint"] = None  # another provider: its own endpoint
        if (other_endpoint or other_provider) and self.name is None:
            data["name"] = None  # and that endpoint's own default model
        return ModelSpec.model_validate(data)


def resolve_model(default: ModelSpec, *levels: ModelSpec | None) -> ModelSpec:
    """The model a call uses: `default` (the endpoint's), then each level over it in turn
    (definition, step, run override)."""
    model = default
    for level in levels:
        if level is not None:
            model = level.merged_over(model)
    return model


class RetrySpec(_Model):
    max_attempts: int = Field(default=3, ge=1, le=100)
    initial_interval: Duration = "1s"
    backoff: float = Field(default=2.0, ge=1.0)
    max_interval: Duration = "1m"

    _d = field_validator("initial_interval", "max_interval")(_check_duration)


class StepLimits(_Model):
    """A step's spending limits (docs/models-and-tools.md#budgets): checked after every
    model call of the step."""

    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)


class Limits(StepLimits):
    max_steps: int = Field(default=50, ge=1, le=10_000)
    timeout: Duration | None = None
    # on reaching max_tokens / max_cost_usd: fail with BUDGET_EXCEEDED, or wait for an
    # approver to raise the budget; None: the operator's setting (`budget_on_exceed`)
    on_budget: Literal["fail", "approve"] | None = None

    _d = field_validator("timeout")(_check_duration)


class RegressionSpec(_Model):
    """Per-definition thresholds of the health check (docs/insights.md); unset: settings.

    Percentages are the rise of the recent runs' median over the baseline's that counts
    as a regression (half of it is a warning)."""

    latency_pct: float | None = Field(default=None, gt=0)
    tokens_pct: float | None = Field(default=None, gt=0)
    cost_pct: float | None = Field(default=None, gt=0)
    consecutive_failures: int | None = Field(default=None, ge=1)
    window: int | None = Field(default=None, ge=1, le=1000)  # baseline runs
    recent: int | None = Field(default=None, ge=1, le=100)  # recent runs compared to it
    min_latency_ms: int | None = Field(default=None, ge=0)  # smaller slowdowns are noise


class _Step(_Model):
    id: str = Field(pattern=STEP_ID_PATTERN)
    label: str | None = None
    next: str | None = None
    timeout: Duration | None = None
    retry: RetrySpec | None = None
    limits: StepLimits | None = None

    _d = field_validator("timeout")(_check_duration)

    @property
    def title(self) -> str:
        return self.label or self.id


class LlmCallStep(_Step):
    action: Literal["llm_call"] = "llm_call"
    prompt: str
    system: str | None = None
    model: ModelSpec | None = None
    tools: list[str] | None = None  # None: the definition's tools; []: none
    max_steps: int | None = Field(default=None, ge=1, le=1000)
    on_max_steps: Literal["fail", "last_answer"] = "fail"
    output: Literal["text", "json"] = "text"


class ToolCallStep(_Step):
    action: Literal["tool_call"] = "tool_call"
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


class ConditionalStep(_Step):
    action: Literal["conditional"] = "conditional"
    condition: str
    then: str
    else_: str | None = Field(default=None, alias="else")


class SubTaskStep(_Step):
    action: Literal["sub_task"] = "sub_task"
    task: str
    version: int | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    priority: str | None = None
    owner: str | None = None


class Branch(_Model):
    name: str | None = None
    task: str | None = None
    version: int | None = None
    input: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Branch:
        if (self.task is None) == (self.steps is None):
            raise ValueError("a branch needs exactly one of 'task' or 'steps'")
        return self


class ParallelStep(_Step):
    action: Literal["parallel"] = "parallel"
    branches: list[Branch] = Field(min_length=1)
    on_failure: Literal["fail_fast", "wait_all"] = "fail_fast"
    max_concurrency: int | None = Field(default=None, ge=1)


class ApprovalStep(_Step):
    action: Literal["approval"] = "approval"
    approvers: list[str] = Field(min_length=1)
    min_approvals: int = Field(default=1, ge=1)
    prompt: str | None = None
    on_timeout: Literal["reject", "approve", "fail"] = "reject"
    on_reject: str | None = None
    reminder: Duration | None = None
    # which earlier step's output an approver may replace when approving
    # (docs/approvals.md#approving-with-an-edit): a step id; None: the step listed just
    # before this one (conditional steps passed over; none after another approval);
    # false: no edits
    edits: str | Literal[False] | None = None

    _r = field_validator("reminder")(_check_duration)

    def edit_target(self, steps: list[Step]) -> str | None:
        """The step whose output an approval of this step may replace; None: none may be."""
        if self.edits is False:
            return None
        if isinstance(self.edits, str):
            return self.edits
        ids = [s.id for s in steps]
        for earlier in reversed(steps[: ids.index(self.id)] if self.id in ids else []):
            if earlier.action != "conditional":  # routing: the step before it is meant
                return None if earlier.action == "approval" else earlier.id
        return None


class WaitStep(_Step):
    action: Literal["wait"] = "wait"
    duration: Duration | None = None
    until: str | None = None  # ISO 8601 time, or a template producing one

    _w = field_validator("duration")(_check_duration)

    @model_validator(mode="after")
    def _one_of(self) -> WaitStep:
        if (self.duration is None) == (self.until is None):
            raise ValueError("a wait step needs exactly one of 'duration' or 'until'")
        return self


class NotifyStep(_Step):
    action: Literal["notify"] = "notify"
    message: str
    channel: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class InputStep(_Step):
    """Ask a person for a value (docs/runs.md#human-input): the run waits until someone
    who may act on it submits one the JSON Schema accepts; it is the step's output.
    `timeout` bounds the wait (the step fails when it passes)."""

    action: Literal["input"] = "input"
    schema_: dict[str, Any] = Field(alias="schema")
    prompt: str | None = None

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(value)
        except SchemaError as e:
            raise ValueError(f"not a valid JSON Schema: {e.message}") from None
        return value


Step = Annotated[
    LlmCallStep
    | ToolCallStep
    | ConditionalStep
    | SubTaskStep
    | ParallelStep
    | ApprovalStep
    | WaitStep
    | NotifyStep
    | InputStep,
    Field(discriminator="action"),
]
ACTIONS = (
    "llm_call",
    "tool_call",
    "conditional",
    "sub_task",
    "parallel",
    "approval",
    "wait",
    "notify",
    "input",
)


class ToolPolicy(_Model):
    """A rule over the agent's tool calls (docs/approvals.md#tool-policies).

    The first rule whose `tool` matches the call's tool name (exact, or a `*` pattern
    such as `mcp:crm/*`) and whose `when` (an expression over `args`, `tool`, `input`,
    `run`, `steps`) is true decides: `allow` runs the call, `deny` answers the model
    with a tool error, `approve` parks the call until `approvers` decide. Organisation
    rules (settings) are tried before the definition's own; no match: allowed.
    """

    tool: str = Field(min_length=1, max_length=200)
    when: str | None = Field(default=None, max_length=4000)
    action: Literal["allow", "deny", "approve"]
    reason: str | None = Field(default=None, max_length=2000)
    approvers: list[str] = Field(default_factory=list)
    min_approvals: int = Field(default=1, ge=1)
    timeout: Duration | None = None
    on_timeout: Literal["reject", "approve"] = "reject"
    reminder: Duration | None = None

    _d = field_validator("timeout", "reminder")(_check_duration)

    @model_validator(mode="after")
    def _approvers_for_approve(self) -> ToolPolicy:
        if self.action == "approve" and not self.approvers:
            raise ValueError("an 'approve' rule needs at least one entry in 'approvers'")
        return self


class TaskDefinition(_Model):
    id: str = Field(pattern=ID_PATTERN)
    name: str | None = None
    description: str | None = None
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    model: ModelSpec | None = None
    tools: list[str] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    steps: list[Step] = Field(min_length=1)
    tags: list[str] = Field(default_factory=list)
    regression: RegressionSpec | None = None
    # rules over the agent's tool calls, after the organisation's (settings)
    tool_policies: list[ToolPolicy] = Field(default_factory=list)

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def referenced_tasks(self) -> list[str]:
        """Ids of every definition this one starts as a sub-task or parallel branch."""
        found: list[str] = []

        def walk(steps: list[Step]) -> None:
            for s in steps:
                if isinstance(s, SubTaskStep):
                    found.append(s.task)
                elif isinstance(s, ParallelStep):
                    for b in s.branches:
                        if b.task:
                            found.append(b.task)
                        if b.steps:
                            walk(b.steps)

        walk(self.steps)
        return sorted(set(found))


Branch.model_rebuild()
ParallelStep.model_rebuild()
TaskDefinition.model_rebuild()
