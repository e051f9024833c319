"""The LLM activity: one model call through the provider the step names.

A class holding its providers (and their HTTP clients), in the shape of the SDK's
`contrib/openai_agents` model activity: SDK retries are off, Temporal retries, and
each provider failure becomes a retryable or non-retryable `ApplicationError` with
`next_retry_delay` from Retry-After. It heartbeats while the reply streams, so a
cancellation (a steer, a cancelled run) reaches it within a heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.llm.base import DeltaSink, Provider, ProviderError
from activities.llm.errors import redact, secret_values
from activities.llm.pricing import PriceTable
from activities.llm.scripted import ScriptedProvider
from activities.support import heartbeating, truncate_text
from activities.tools.registry import ToolRegistry
from duratask.logging import get_logger
from duratask.settings import Settings
from workflows import contracts
from workflows.models import LlmRequest, LlmResponse

log = get_logger(__name__)

ProviderFactory = Callable[[Settings], Provider]


def _openai(settings: Settings) -> Provider:
    from activities.llm.openai_provider import OpenAIProvider

    return OpenAIProvider(settings.openai)


def _anthropic(settings: Settings) -> Provider:
    from activities.llm.anthropic_provider import AnthropicProvider

    return AnthropicProvider(settings.anthropic)


PROVIDERS: dict[str, ProviderFactory] = {
    "scripted": lambda _s: ScriptedProvider(),
    "openai": _openai,
    "anthropic": _anthropic,
}


class LlmActivities:
    def __init__(
        self,
        settings: Settings,
        registry: ToolRegistry | None = None,
        delta_sink_factory: Callable[..., DeltaSink] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.prices = PriceTable(settings.prices)
        self._providers: dict[str, Provider] = {}
        self.delta_sink_factory = delta_sink_factory

    def provider(self, name: str) -> Provider:
        if name not in self._providers:
            factory = PROVIDERS.get(name)
            if factory is None:
                raise ApplicationError(
                    f"unknown model provider '{name}' (known: {', '.join(sorted(PROVIDERS))})",
                    type="UNKNOWN_PROVIDER",
                    non_retryable=True,
                )
            try:
                self._providers[name] = factory(self.settings)
            except ImportError as e:
                raise ApplicationError(
                    f"model provider '{name}' is not available: {e}",
                    type="UNKNOWN_PROVIDER",
                    non_retryable=True,
                ) from None
        return self._providers[name]

    @activity.defn(name=contracts.LLM_ACTIVITY)
    async def complete(self, req: LlmRequest) -> LlmResponse:
        provider_name = req.model.provider or "scripted"
        provider = self.provider(provider_name)
        info = activity.info()
        log.info(
            "llm call",
            run_id=req.run_id,
            step_id=req.step_id,
            provider=provider_name,
            model=req.model.name,
            turn=req.turn,
            attempt=info.attempt,
        )
        on_delta = self.delta_sink_factory(req, info.attempt) if self.delta_sink_factory else None
        try:
            async with heartbeating(step_id=req.step_id, turn=req.turn):
                tools = self.registry.schemas(req.tools) if self.registry else []
                tools += [spec.tool_schema() for spec in req.tool_specs]  # pinned MCP tools
                response = await provider.complete(req, tools, on_delta)
        except ProviderError as e:
            e.message = redact(e.message, secret_values(self.settings))  # may echo the key
            raise _to_application_error(e, provider_name) from None
        finally:
            close = getattr(on_delta, "aclose", None)  # a streaming sink flushes before we answer
            if close is not None:
                await close()
        if response.text:
            response.text, response.truncated = truncate_text(response.text, req.max_output_bytes)
        response.usage.cost_usd = self.prices.cost(provider_name, req.model.name, response.usage)
        return response


def _to_application_error(e: ProviderError, provider: str) -> ApplicationError:
    details = {"status": e.status, "provider": provider, "retry_after": e.retry_after}
    return ApplicationError(
        f"{provider}: {e.message}",
        details,
        type=e.code,
        non_retryable=not e.retryable,
        next_retry_delay=timedelta(seconds=e.retry_after) if e.retry_after else None,
    )
