"""Settings for every duratask process, read from the environment and `.env`.

All variables carry the `DURATASK_` prefix; nested models use `__`
(e.g. `DURATASK_OPENAI__BASE_URL`). Secrets are `SecretStr` so they never print.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflows.definition import ToolPolicy
from workflows.tool_rules import problems as policy_problems

STATE_DIR = Path(".duratask")


class OpenAISettings(BaseModel):
    api_key: SecretStr | None = None
    base_url: str | None = None
    organization: str | None = None
    timeout_s: float = 120.0


class AnthropicSettings(BaseModel):
    api_key: SecretStr | None = None
    base_url: str | None = None
    timeout_s: float = 120.0


class ModelEndpoint(BaseModel):
    """A named model server: what a definition or step picks with `model: {endpoint: NAME}`.

    `kind` is the wire protocol (`openai` covers every OpenAI-compatible server: vLLM,
    llama.cpp, Ollama, LM Studio, OpenRouter); `default_model` is the model used when a
    definition names none; `prices` (USD per million tokens, [input, output]) price its
    models, and a server with a base URL of its own is never priced at a vendor's rates.
    """

    kind: Literal["openai", "anthropic"] = "openai"
    base_url: str | None = None
    api_key: SecretStr | None = None
    default_model: str | None = None
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)
    organization: str | None = None
    timeout_s: float = 120.0
    # a 5xx answered to the same request this many times fails the step with its message
    max_server_error_attempts: int = Field(default=3, ge=1)
    # limits for the endpoint as a whole, held across every worker through the store
    # (docs/models-and-tools.md#rate-limits); None: no limit
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class ApiKey(BaseModel):
    """A static gateway key mapped to an identity and its scopes."""

    key: SecretStr
    identity: str
    scopes: list[str] = Field(
        default_factory=lambda: ["tasks:read", "tasks:write", "tasks:approve"]
    )
    groups: list[str] = Field(default_factory=list)


class McpServerSettings(BaseModel):
    """One MCP server duratask may call tools on (docs/mcp.md).

    `stdio`: `command` + `args`, launched by the worker with `env` added to a minimal
    environment. `http` (streamable HTTP): `url` + `headers`. Values in `env` and
    `headers` are secrets: they never reach logs, errors or history.
    """

    transport: Literal["stdio", "http"] = "stdio"
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, SecretStr] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    # An HTTP server on a private/loopback address is refused (as for `http_request`)
    # unless allow-listed here.
    allow_private: bool = False
    timeout_s: float = 60.0  # one tool call (the step's timeout still bounds the activity)


class DailyLimitSettings(BaseModel):
    """Usage allowed per UTC day (docs/models-and-tools.md#budgets)."""

    max_tokens: int | None = Field(default=None, ge=1)
    max_cost_usd: float | None = Field(default=None, gt=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DURATASK_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    namespace: str = "default"
    task_queue: str = "duratask"
    temporal_ui_url: str = "http://127.0.0.1:8233"

    # Store: SQLite by default; `postgresql+asyncpg://user:pass@host/db` in production
    # (the `postgres` extra). Pool settings apply to PostgreSQL only.
    database_url: str = f"sqlite+aiosqlite:///{STATE_DIR}/duratask.db"
    database_pool_size: int = Field(default=5, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    database_pool_timeout_s: float = Field(default=30.0, gt=0)
    database_connect_timeout_s: float = Field(default=10.0, gt=0)
    database_pool_recycle_s: int = Field(default=1800, ge=-1)

    # Gateway
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None

    # Models: the provider used when a definition names none.
    # Empty means "nothing configured": the offline scripted model is used.
    default_provider: str | None = None
    default_model: str | None = None
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    anthropic: AnthropicSettings = Field(default_factory=AnthropicSettings)
    # Price table, USD per million tokens: {"gpt-4o-mini": [0.15, 0.60]}
    prices: dict[str, tuple[float, float]] = Field(default_factory=dict)

    # Agent loop: continue-as-new after this many model calls per execution (None: when
    # Temporal suggests it); drift alert after this many turns without plan progress
    agent_continue_as_new_after_turns: int | None = None
    agent_drift_after_turns: int = 3

    # Tools
    tool_modules: list[str] = Field(default_factory=list)
    http_allow_private: bool = False
    http_max_response_bytes: int = 1_000_000
    http_timeout_s: float = 30.0
    notify_webhook_url: str | None = None

    # Auth: static keys; empty list + auth_required=False means open (dev/test only)
    auth_required: bool = False
    api_keys: list[ApiKey] = Field(default_factory=list)
    jwt_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # What the CLI sends as its bearer token
    token: SecretStr | None = None
    # Who `duratask dev`'s local key is
    dev_identity: str = "local"

    # Worker tuning
    max_concurrent_activities: int = 100
    max_concurrent_workflow_tasks: int = 100
    max_subtask_depth: int = 8
    shutdown_grace_s: float = 10.0
    # how often a running activity's heartbeats reach the server at most (cancel latency)
    # 0.5 s: a cancelled or steered model call closes its stream well within a second
    heartbeat_throttle_s: float = 0.5

    # Live run events (docs/events.md)
    stream_llm_deltas: bool = True  # relay the model's text as live `llm.delta` events
    llm_delta_interval_ms: int = 200  # one relayed batch per interval (no history cost)
    events_delta_poll_ms: int = 25  # a watched run's relay is read this often (no history)
    stream_delta_ttl_s: float = 600.0  # relayed token deltas are pruned after this
    events_keepalive_s: float = 15.0  # SSE keep-alive comment when idle
    events_max_lag: int = 2000  # events a slow SSE client may trail before it is dropped
    events_poll_cooldown_ms: int = 50  # pause between the shared subscription's polls
    events_idle_linger_s: float = 2.0  # keep a run's subscription this long after its last client
    events_query_timeout_s: float = 5.0  # reading a stream by query needs a worker: bound it

    # Insights (docs/insights.md): runs one stats read scans at most, default window,
    # and the health check's defaults (a definition's `regression` block overrides them)
    insights_max_runs: int = 5000
    insights_default_window: str = "7d"
    regression_latency_pct: float = 50.0
    regression_tokens_pct: float = 50.0
    regression_cost_pct: float = 50.0
    regression_consecutive_failures: int = 3
    regression_window: int = 20
    regression_recent: int = 5
    regression_min_baseline: int = 3
    regression_min_latency_ms: int = 100
    regression_max_definitions: int = 200
    # every definition's health checked on a Temporal Schedule this often ("" = never)
    health_check_every: str = "15m"

    # Output size kept in history per step before truncation (bytes)
    max_output_bytes: int = 256_000

    log_level: str = "INFO"
    log_json: bool = False

    # Bounded inputs (docs/limits.md): every limit is checked before the work it bounds
    max_body_bytes: int = 4_194_304  # any request body (413 above), streamed bytes counted
    max_definition_bytes: int = 1_048_576  # a definition document (413 above)
    max_definition_steps: int = 1_000  # steps in a definition, inline branch steps included
    max_definition_depth: int = 32  # nesting of the definition document (JSON or YAML)
    max_template_chars: int = 65_536  # each prompt, system, message, condition, until
    max_yaml_nodes: int = 100_000  # YAML nodes once aliases are expanded
    # Temporal's payload (blob) size limit: a run whose input makes a larger payload is
    # refused with 413 instead of failing in gRPC
    temporal_payload_limit_bytes: int = 2_097_152
    schedule_backfill_max_span: str = "366d"  # one backfill request covers at most this
    schedule_backfill_max_runs: int = 1_000  # and starts at most this many runs

    # Scale-out (duratask/peers.py): refuse to start when a live gateway or worker on
    # the same store runs with other shared settings (task queue, namespace, keys)
    check_peers: bool = True
    peer_ttl_s: float = Field(default=60.0, gt=1)

    # Encrypted payloads and the codec server (docs/security.md, "Encryption").
    # `id1:base64key,id2:base64key`: AES-256 keys (32 bytes, base64); the first encrypts,
    # all decrypt. Unset: payloads are stored as clear JSON.
    encryption_keys: SecretStr | None = None
    # Origins that may call /codec/* from a browser (the Temporal Web UI); empty: the
    # origin of `temporal_ui_url`
    codec_cors_origins: list[str] = Field(default_factory=list)
    # A path secret for a Web UI that cannot forward a user's token (`duratask dev`
    # sets one): /codec/ui/<secret>/decode answers without a bearer token
    codec_ui_secret: SecretStr | None = None
    codec_max_body_bytes: int = 8_000_000

    # Observability (docs/observability.md): traces exported by OTLP/HTTP only when an
    # endpoint is set (`tracing` turns spans on without exporting, for tests and tools);
    # the worker's Prometheus metrics at `worker_metrics_address` (host:port) when set;
    # the gateway's at /metrics when `gateway_metrics` is on
    otlp_endpoint: str | None = None
    tracing: bool = False
    service_name: str = "duratask"
    worker_metrics_address: str | None = None
    gateway_metrics: bool = True
    # Secure defaults (docs/security.md): serve with open auth on a non-loopback
    # address only when this is set explicitly (`duratask gateway --insecure`)
    insecure: bool = False

    # Long runs (docs/runs.md#retries, #long-runs): attempts of one activity call that
    # workers going away may cut short (not counted as retries) before the step fails;
    # an interpreted run continues as new between steps once its history reaches this
    # many events or bytes (or when Temporal suggests it), well below Temporal's limits
    step_max_interruptions: int = 10
    run_continue_as_new_history_events: int = 10_000
    run_continue_as_new_history_bytes: int = 10_000_000

    # MCP (docs/mcp.md): servers whose tools definitions may allow as
    # `mcp:<server>/<tool>`, e.g. DURATASK_MCP_SERVERS='{"docs": {"transport": "http",
    # "url": "https://..."}}'; listing a server's tools when a definition is saved is
    # bounded by `mcp_list_timeout_s` (a server that cannot be listed does not block a save).
    mcp_servers: dict[str, McpServerSettings] = Field(default_factory=dict)
    mcp_list_timeout_s: float = 10.0

    # Web console (docs/console.md): the key that signs session cookies and sign-in links
    # (unset: a random key per process, so sessions end when the gateway restarts), how
    # long a session lasts, and whether its cookie is sent over HTTPS only.
    console_session_secret: SecretStr | None = None
    console_session_hours: float = 12.0
    console_cookie_secure: bool = False

    # Worker memory (docs/deploy.md#sizing): runs kept in the worker's sticky workflow
    # cache. A cached run answers a signal, update or query at once; one evicted from it
    # is replayed from its history first. Parked runs (approvals, timers) beyond this
    # number cost no worker memory. 0 turns the cache off (every task replays).
    max_cached_workflows: int = Field(default=1000, ge=0)

    # --- budgets (docs/models-and-tools.md#budgets)
    # what a run does on reaching limits.max_tokens / max_cost_usd when its definition
    # does not say (`limits.on_budget`): fail with BUDGET_EXCEEDED, or wait for an approver
    budget_on_exceed: Literal["fail", "approve"] = "fail"
    # usage allowed per UTC day: each owner's runs together ({"max_cost_usd": 20}), and per
    # definition id ({"*": {...}} for each definition); reaching one acts as above
    budget_daily_per_owner: DailyLimitSettings | None = None
    budget_daily_per_definition: dict[str, DailyLimitSettings] = Field(default_factory=dict)

    # Approvals and outbound requests (docs/security.md). The gateway signs every
    # approval decision with `approval_key` and the worker checks it (both need it;
    # `duratask dev` generates one). Older keys still verify, for rotation.
    approval_key: SecretStr | None = None
    approval_previous_keys: list[SecretStr] = Field(default_factory=list)
    # A definition version may not set an approval timeout under this floor (e.g. "1h")
    # unless its author may approve the step or has tasks:admin.
    approval_min_timeout: str | None = None
    # http_request: addresses/networks allowed although not globally routable
    # (tests' loopback servers); `http_allow_private` allows them all (local dev only).
    http_allow_networks: list[str] = Field(default_factory=list)

    def approval_keys(self) -> list[bytes]:
        """The signing key first, then the previous ones (they still verify)."""
        keys = [self.approval_key, *self.approval_previous_keys]
        return [k.get_secret_value().encode() for k in keys if k is not None]

    # Model endpoints (docs/models-and-tools.md): name -> endpoint. `openai` and
    # `anthropic` exist implicitly from the `openai` / `anthropic` blocks above unless
    # named here; `default_endpoint` is the one used when a definition names none.
    model_endpoints: dict[str, ModelEndpoint] = Field(default_factory=dict)
    default_endpoint: str | None = None

    def endpoints(self) -> dict[str, ModelEndpoint]:
        """Every named endpoint, the implicit `openai` / `anthropic` ones included."""
        found: dict[str, ModelEndpoint] = {}

        if self.openai.api_key or self.openai.base_url:
            found["openai"] = ModelEndpoint(
                kind="openai",
                base_url=self.openai.base_url,
                api_key=self.openai.api_key,
                organization=self.openai.organization,
                timeout_s=self.openai.timeout_s,
                default_model=self.default_model
                if self.default_provider in (None, "openai")
                else None,
            )
        if self.anthropic.api_key or self.anthropic.base_url:
            found["anthropic"] = ModelEndpoint(
                kind="anthropic",
                base_url=self.anthropic.base_url,
                api_key=self.anthropic.api_key,
                timeout_s=self.anthropic.timeout_s,
                default_model=self.default_model if self.default_provider == "anthropic" else None,
            )
        return {**found, **self.model_endpoints}

    @property
    def model_endpoint(self) -> str | None:
        """The endpoint used when a definition names none (None: the scripted model)."""
        if self.default_endpoint:
            return self.default_endpoint
        endpoints = self.endpoints()
        if self.default_provider in endpoints:
            return self.default_provider
        if self.default_provider == "scripted":
            return None
        for name in ("openai", "anthropic"):
            if name in endpoints:
                return name
        return next(iter(self.model_endpoints), None)

    @property
    def model_provider(self) -> str:
        """The provider (wire protocol) used when a definition does not name one."""
        endpoint = self.model_endpoint
        if endpoint is not None and endpoint in self.endpoints():
            return self.endpoints()[endpoint].kind
        return self.default_provider or "scripted"

    @property
    def model_name(self) -> str | None:
        """The default model: the endpoint's own (None: the endpoint decides at call time)."""
        endpoint = self.model_endpoint
        if endpoint is None:
            return self.default_model or "echo"
        return self.endpoints().get(endpoint, ModelEndpoint()).default_model or self.default_model

    # Model rate limits (docs/models-and-tools.md#rate-limits): a call whose slot opens
    # within this many seconds waits inside its activity (heartbeating); a longer wait is a
    # durable timer in the run, shown as `waiting_for_rate_limit`.
    rate_limit_inline_wait_s: float = Field(default=5.0, ge=0)

    def gateway_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    # --- tool policies (docs/approvals.md#tool-policies): organisation-wide rules over
    # the agents' tool calls, tried before each definition's own; JSON in the environment
    # (DURATASK_TOOL_POLICIES='[{"tool": "http_request", "action": "deny", ...}]').
    # Pinned in each run's config when it starts.
    tool_policies: list[ToolPolicy] = Field(default_factory=list)

    @field_validator("tool_policies")
    @classmethod
    def _valid_policies(cls, rules: list[ToolPolicy]) -> list[ToolPolicy]:
        found = policy_problems(rules, "tool_policies")
        if found:
            raise ValueError("; ".join(f"{field}: {message}" for field, message in found))
        return rules

    # Delivery of approval and input requests (docs/approvals.md#delivery): the notify
    # webhook and e-mail, each recipient with a signed, single-use link to a decision page
    # at `public_url`. The link key signs on workers and verifies on gateways (set both);
    # without it requests are still delivered, without links.
    delivery_link_key: SecretStr | None = None
    delivery_link_ttl: str = "24h"  # never beyond the request's own deadline
    delivery_groups: dict[str, list[str]] = Field(default_factory=dict)  # group -> people
    smtp_host: str | None = None  # e-mail is off without it
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_from: str = "duratask@localhost"
    smtp_starttls: bool = True
    smtp_ssl: bool = False  # implicit TLS (port 465) instead of STARTTLS
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = 10.0


@lru_cache
def get_settings() -> Settings:
    return Settings()
