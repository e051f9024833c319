"""Settings for every duratask process, read from the environment and `.env`.

All variables carry the `DURATASK_` prefix; nested models use `__`
(e.g. `DURATASK_OPENAI__BASE_URL`). Secrets are `SecretStr` so they never print.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class ApiKey(BaseModel):
    """A static gateway key mapped to an identity and its scopes."""

    key: SecretStr
    identity: str
    scopes: list[str] = Field(
        default_factory=lambda: ["tasks:read", "tasks:write", "tasks:approve"]
    )
    groups: list[str] = Field(default_factory=list)


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

    # Store
    database_url: str = f"sqlite+aiosqlite:///{STATE_DIR}/duratask.db"

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
    stream_llm_deltas: bool = True  # publish the model's text as `llm.delta` events
    llm_delta_interval_ms: int = 200  # one publish signal per interval, not per token
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

    # Output size kept in history per step before truncation (bytes)
    max_output_bytes: int = 256_000

    log_level: str = "INFO"
    log_json: bool = False

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

    def gateway_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
