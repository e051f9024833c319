"""Which model server a call goes to: a named endpoint from settings, picked by the model spec.

A team may use a hosted model and a local one side by side, so a call names an
endpoint (`model: {endpoint: local}`) and the endpoint says which wire protocol it
speaks, where it is, its key, its default model and its prices. Older definitions
that only say `provider: openai` use the endpoint of that name (the `openai` /
`anthropic` settings blocks), and `scripted` needs none.

The default model follows the endpoint: its `default_model`, else the vendor's usual
one when the endpoint is the vendor itself (no base URL), else whatever the server
lists first at `/models`; never a vendor's model name sent to somebody else's server.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from temporalio.exceptions import ApplicationError

from duratask.settings import ModelEndpoint, Settings
from workflows.definition import ModelSpec

ENDPOINT_KINDS = ("openai", "anthropic")
VENDOR_DEFAULT_MODEL = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}


@dataclass(frozen=True)
class Target:
    """Where one call goes: the endpoint's name (None: a provider without one) and kind."""

    name: str | None
    kind: str
    endpoint: ModelEndpoint | None

    @property
    def label(self) -> str:
        """How errors and logs name it: `endpoint 'local' (http://...)`."""
        if self.endpoint is None or self.name is None:
            return self.kind
        where = _public_url(self.endpoint.base_url) if self.endpoint.base_url else "vendor URL"
        return f"endpoint '{self.name}' ({where})"

    @property
    def is_vendor(self) -> bool:
        """The vendor's own service (no base URL of its own): priced at the vendor's rates."""
        return self.endpoint is None or not self.endpoint.base_url


def _public_url(url: str) -> str:
    """The URL without credentials or query (either may hold a key)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def resolve_target(spec: ModelSpec, settings: Settings) -> Target:
    endpoints = settings.endpoints()
    name = spec.endpoint
    if name is None and spec.provider in ENDPOINT_KINDS:
        name = spec.provider  # `provider: openai` uses the endpoint named after it
    if name is None:
        return Target(None, spec.provider or "scripted", None)
    endpoint = endpoints.get(name)
    if endpoint is None:
        if spec.endpoint is None:  # `provider: openai` with nothing configured: SDK defaults
            return Target(name, name, ModelEndpoint(kind=name))  # type: ignore[arg-type]
        known = ", ".join(sorted(endpoints)) or "none"
        raise ApplicationError(
            f"model endpoint '{name}' is not configured (configured: {known}); "
            "add it to DURATASK_MODEL_ENDPOINTS",
            type="UNKNOWN_ENDPOINT",
            non_retryable=True,
        )
    if spec.provider not in (None, endpoint.kind):
        raise ApplicationError(
            f"model endpoint '{name}' speaks '{endpoint.kind}', but the model says "
            f"provider '{spec.provider}': name one or the other",
            type="INVALID_MODEL",
            non_retryable=True,
        )
    return Target(name, endpoint.kind, endpoint)


def configured_model(target: Target) -> str | None:
    """The model to use when the spec names none, if settings alone can tell."""
    if target.endpoint is not None and target.endpoint.default_model:
        return target.endpoint.default_model
    if target.is_vendor:
        return VENDOR_DEFAULT_MODEL.get(target.kind)
    return None
