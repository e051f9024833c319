"""The LLM activity: one model call to the endpoint the step's model names.

A class holding its providers (and their HTTP clients, one per endpoint), in the shape
of the SDK's `contrib/openai_agents` model activity: SDK retries are off, Temporal
retries, and each provider failure becomes a retryable or non-retryable
`ApplicationError` with `next_retry_delay` from Retry-After. An HTTP 500 answered to
the same request `max_server_error_attempts` times is that server's answer to it, so
the call stops there with the server's message instead of using up the step's retries.
A reply with no text and no tool call (a server's way of failing past the context
window), or one cut off by the token limit, fails the step: it is never a success.
It heartbeats while the reply streams, so a cancellation (a steer, a cancelled run)
reaches it at the next heartbeat, and the HTTP stream closes with it.

Errors say whether they are transient (`details.transient`: the endpoint refused, failed
or could not be reached), which is what moves a call to its fallback model; with a
fallback next, a Retry-After longer than the request's `fallback_wait_s` is not waited
for. An endpoint with rate limits gets a slot in the shared store before each call
(duratask/store/rate_limits.py): a short wait is slept here, heartbeating; a longer one
is handed back to the workflow (`LlmResponse.rate_limited`), which waits on a durable
timer and calls again with the slot, so waiting never uses a retry attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.llm.base import DeltaSink, Provider, ProviderError
from activities.llm.endpoints import Target, configured_model, resolve_target
from activities.llm.errors import redact, secret_values
from activities.llm.pricing import PriceTable
from activities.llm.scripted import ScriptedProvider
from activities.llm.usage import estimate_usage
from activities.support import heartbeating, truncate_text
from activities.tools.registry import ToolRegistry
from duratask.logging import get_logger
from duratask.settings import ModelEndpoint, Settings
from duratask.store.rate_limits import RateLimiter
from workflows import contracts
from workflows.models import LlmRequest, LlmResponse, RateLimitWait

log = get_logger(__name__)

ProviderFactory = Callable[[Settings], Provider]
EndpointFactory = Callable[[ModelEndpoint, str], Provider]

E_EMPTY_REPLY = "MODEL_EMPTY_REPLY"
E_CUT_OFF = "MODEL_REPLY_CUT_OFF"
CUT_OFF_REASONS = {"length", "max_tokens"}
HEARTBEAT_EVERY_S = 0.2  # how often a streaming call offers a heartbeat (the worker throttles)


def _openai(endpoint: ModelEndpoint, label: str) -> Provider:
    from activities.llm.openai_provider import OpenAIProvider

    return OpenAIProvider(endpoint, label)


def _anthropic(endpoint: ModelEndpoint, label: str) -> Provider:
    from activities.llm.anthropic_provider import AnthropicProvider

    return AnthropicProvider(endpoint, label)


ENDPOINT_PROVIDERS: dict[str, EndpointFactory] = {"openai": _openai, "anthropic": _anthropic}
# providers that need no endpoint (tests and benchmarks add their own here)
PROVIDERS: dict[str, ProviderFactory] = {"scripted": lambda _s: ScriptedProvider()}


class LlmActivities:
    def __init__(
        self,
        settings: Settings,
        registry: ToolRegistry | None = None,
        delta_sink_factory: Callable[..., DeltaSink] | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = limiter  # endpoint rate limits (None: not enforced)
        self.registry = registry
        self.prices = PriceTable(settings.prices)
        self._providers: dict[str, Provider] = {}
        self._listed_models: dict[str, str] = {}
        self.delta_sink_factory = delta_sink_factory
        # Build the configured endpoints' clients now: importing an SDK inside the
        # activity would block the event loop (and its heartbeats) for seconds.
        for name, endpoint in settings.endpoints().items():
            target = Target(name, endpoint.kind, endpoint)
            self.provider(target)

    def provider(self, target: Target) -> Provider:
        key = f"endpoint:{target.name}" if target.endpoint is not None else target.kind
        if key in self._providers:
            return self._providers[key]
        try:
            if target.endpoint is not None:
                provider = ENDPOINT_PROVIDERS[target.kind](target.endpoint, target.label)
            else:
                factory = PROVIDERS.get(target.kind)
                if factory is None:
                    known = ", ".join(sorted({*PROVIDERS, *ENDPOINT_PROVIDERS}))
                    raise ApplicationError(
                        f"unknown model provider '{target.kind}' (known: {known})",
                        type="UNKNOWN_PROVIDER",
                        non_retryable=True,
                    )
                provider = factory(self.settings)
        except ImportError as e:
            raise ApplicationError(
                f"model provider '{target.kind}' is not available: {e}",
                type="UNKNOWN_PROVIDER",
                non_retryable=True,
            ) from None
        self._providers[key] = provider
        return provider

    async def _model_name(self, target: Target, provider: Provider) -> str:
        """The endpoint's default model: from settings, else the first the server lists."""
        name = configured_model(target)
        if name:
            return name
        key = target.name or target.kind
        if key not in self._listed_models:
            listed = getattr(provider, "listed_model", None)
            found = await listed() if listed is not None else None
            if not found:
                raise ApplicationError(
                    f"{target.label} has no default model and its server lists none: "
                    "name one in the definition's `model` or the endpoint's `default_model`",
                    type="NO_MODEL",
                    non_retryable=True,
                )
            self._listed_models[key] = found
        return self._listed_models[key]

    @activity.defn(name=contracts.LLM_ACTIVITY)
    async def complete(self, req: LlmRequest) -> LlmResponse:
        target = resolve_target(req.model, self.settings)
        provider = self.provider(target)
        info = activity.info()
        on_delta = self.delta_sink_factory(req, info.attempt) if self.delta_sink_factory else None
        try:
            async with heartbeating(HEARTBEAT_EVERY_S, step_id=req.step_id, turn=req.turn):
                if target.endpoint is not None and not req.model.name:
                    name = await self._model_name(target, provider)
                    req = req.model_copy(
                        update={"model": req.model.model_copy(update={"name": name})}
                    )
                log.info(
                    "llm call",
                    run_id=req.run_id,
                    step_id=req.step_id,
                    endpoint=target.name,
                    provider=target.kind,
                    model=req.model.name,
                    turn=req.turn,
                    attempt=info.attempt,
                )
                slot = await self._slot(target, req)
                if isinstance(slot, RateLimitWait):  # the workflow waits for it, durably
                    return LlmResponse(endpoint=target.name, model=req.model.name,
                                       rate_limited=slot)  # fmt: skip
                tools = self.registry.schemas(req.tools) if self.registry else []
                tools += [spec.tool_schema() for spec in req.tool_specs]  # pinned MCP tools
                try:
                    response = await provider.complete(req, tools, on_delta)
                except BaseException:
                    if slot is not None:  # refused or broken: no tokens used
                        await asyncio.shield(self._settle(slot, 0))
                    raise
                if slot is not None:
                    await self._settle(slot, response.usage.total_tokens)
        except ProviderError as e:
            e.message = redact(e.message, secret_values(self.settings))  # may echo the key
            raise _to_application_error(e, target, info.attempt, req.fallback_wait_s) from None
        finally:
            close = getattr(on_delta, "aclose", None)  # a streaming sink flushes before we answer
            if close is not None:
                await close()
        response.endpoint = target.name
        if target.endpoint is not None:
            _check_complete(response, req, target)
        if response.text:
            response.text, response.truncated = truncate_text(response.text, req.max_output_bytes)
        model = req.model.name or response.model
        response.usage.cost_usd = self.prices.cost(
            target.kind,
            model,
            response.usage,
            endpoint_prices=target.endpoint.prices if target.endpoint else None,
            vendor=target.is_vendor,
        )
        if response.usage.estimated:
            log.info(
                "model server sent no usage; recorded an estimate",
                run_id=req.run_id,
                endpoint=target.name,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
            )
        return response

    # ------------------------------------------------------------ rate limits
    async def _slot(self, target: Target, req: LlmRequest) -> int | RateLimitWait | None:
        """The call's slot under its endpoint's limits: its id once it may start (after a
        short wait here), a `RateLimitWait` for the workflow when the wait is longer, or
        None when the endpoint has no limits."""
        endpoint = target.endpoint
        if endpoint is None or target.name is None:
            return None
        if not (endpoint.requests_per_minute or endpoint.tokens_per_minute):
            return None
        if self.limiter is None:
            log.warning("endpoint rate limits are not enforced: this worker has no store",
                        endpoint=target.name)  # fmt: skip
            return None
        limiter, name = self.limiter, target.name
        if req.reservation is not None:  # the slot the workflow waited for
            at = await limiter.claim(req.reservation, name)
            if at is not None:
                await self._wait_until(at, name, req)
                return req.reservation
        need = estimate_usage(req.messages, None, []).input_tokens + (req.model.max_tokens or 0)
        slot = await limiter.reserve(
            name, endpoint.requests_per_minute, endpoint.tokens_per_minute, need
        )
        wait = slot.at - time.time()
        if wait > self.settings.rate_limit_inline_wait_s:
            log.info("model call waits for its rate limit", run_id=req.run_id, endpoint=name,
                     wait_s=round(wait, 3), limit=slot.limit)  # fmt: skip
            return RateLimitWait(
                endpoint=name,
                until=datetime.fromtimestamp(slot.at, UTC),
                wait_s=round(wait, 3),
                reservation=slot.id,
                limit=slot.limit or "requests_per_minute",
            )
        try:
            await self._wait_until(slot.at, name, req)
        except BaseException:
            await asyncio.shield(limiter.release(slot.id))
            raise
        await limiter.claim(slot.id, name)
        return slot.id

    async def _wait_until(self, at: float, endpoint: str, req: LlmRequest) -> None:
        """Sleep until `at`, heartbeating that the call waits for `endpoint`'s rate limit."""
        while (left := at - time.time()) > 0:
            activity.heartbeat({"step_id": req.step_id, "turn": req.turn,
                                "waiting_for_rate_limit": endpoint})  # fmt: skip
            await asyncio.sleep(min(left, HEARTBEAT_EVERY_S))

    async def _settle(self, slot: int, tokens: int) -> None:
        if self.limiter is None:
            return
        try:
            await self.limiter.settle(slot, tokens)
        except Exception as e:  # the call answered: a bookkeeping failure must not fail it
            log.warning("could not record a call's tokens for its rate limit", error=str(e))


def _check_complete(response: LlmResponse, req: LlmRequest, target: Target) -> None:
    """An empty or cut-off reply is a failed call, whatever HTTP status it came with."""
    if not response.text and not response.tool_calls:
        raise ApplicationError(
            f"{target.label} answered with no text and no tool call "
            f"(finish_reason: {response.finish_reason or 'none'}); the conversation may be "
            "longer than the model's context window",
            {"finish_reason": response.finish_reason, "endpoint": target.name},
            type=E_EMPTY_REPLY,
            non_retryable=True,
        )
    if response.finish_reason in CUT_OFF_REASONS and req.model.on_length != "accept":
        raise ApplicationError(
            f"{target.label} stopped at the token limit (finish_reason: "
            f"{response.finish_reason}, max_tokens: {req.model.max_tokens or 'server default'}): "
            "raise max_tokens, or set `on_length: accept` in the step's model to keep cut-off replies",
            {"finish_reason": response.finish_reason, "endpoint": target.name},
            type=E_CUT_OFF,
            non_retryable=True,
        )


def _to_application_error(
    e: ProviderError, target: Target, attempt: int, fallback_wait_s: float | None = None
) -> ApplicationError:
    details = {
        "status": e.status,
        "provider": target.kind,
        "endpoint": target.name,
        "retry_after": e.retry_after,
        # the endpoint refused, failed or could not be reached: a fallback model may answer
        "transient": e.retryable,
    }
    non_retryable = not e.retryable
    message = e.message if e.message.startswith(target.label) else f"{target.label}: {e.message}"
    limit = target.endpoint.max_server_error_attempts if target.endpoint else 3
    if e.status == 500 and attempt >= limit:
        non_retryable = True
        message = (
            f"{target.label} answered HTTP 500 to the same request {attempt} times: {e.message}"
        )
    if e.retryable and fallback_wait_s is not None and (e.retry_after or 0) > fallback_wait_s:
        non_retryable = True  # not worth waiting for: the fallback model comes next
        message = f"{message} (Retry-After {e.retry_after:g} s: trying the fallback model)"
    return ApplicationError(
        message,
        details,
        type=e.code,
        non_retryable=non_retryable,
        next_retry_delay=timedelta(seconds=e.retry_after) if e.retry_after else None,
    )
