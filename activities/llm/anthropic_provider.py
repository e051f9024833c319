"""The `anthropic` provider: the Messages API with tools.

Same contract as the openai provider: SDK retries off, Temporal retries; text
streams to `on_delta`; failures map to `ProviderError` with the provider's code and
message and Retry-After. Anthropic wants the system prompt apart, tool results as
`tool_result` blocks in a user message, and an explicit `max_tokens`.
"""

from __future__ import annotations

import inspect
from typing import Any

import anthropic
from anthropic import AsyncAnthropic

from activities.llm.base import DeltaSink, ProviderError
from activities.llm.errors import connection_error, from_status_error
from duratask.settings import AnthropicSettings
from workflows.models import ChatMessage, LlmRequest, LlmResponse, ToolCall, Usage

DEFAULT_MAX_TOKENS = 4096


def to_anthropic(messages: list[ChatMessage]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system, messages): consecutive tool results become one user message."""
    system = "\n\n".join(m.content or "" for m in messages if m.role == "system") or None
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif m.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if m.content:
                blocks.append({"type": "text", "text": m.content})
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks or [{"type": "text", "text": ""}]})
        else:
            out.append({"role": "user", "content": m.content or ""})
    return system, out


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, settings: AnthropicSettings) -> None:
        self.client = AsyncAnthropic(
            api_key=settings.api_key.get_secret_value() if settings.api_key else "not-needed",
            base_url=settings.base_url,
            timeout=settings.timeout_s,
            max_retries=0,
        )

    def _params(self, req: LlmRequest, tools: list[dict[str, Any]]) -> dict[str, Any]:
        m = req.model
        system, messages = to_anthropic(req.messages)
        params: dict[str, Any] = {
            "model": m.name or "claude-3-5-haiku-latest",
            "messages": messages,
            "max_tokens": m.max_tokens or DEFAULT_MAX_TOKENS,
        }
        if system:
            params["system"] = system
        if tools:
            params["tools"] = [
                {
                    "name": t["name"],
                    "description": t["description"],
                    "input_schema": t["parameters"],
                }
                for t in tools
            ]
        for field in ("temperature", "top_p"):
            value = getattr(m, field)
            if value is not None:
                params[field] = value
        params.update(m.options)
        return params

    async def complete(
        self,
        req: LlmRequest,
        tools: list[dict[str, Any]],
        on_delta: DeltaSink | None = None,
    ) -> LlmResponse:
        params = self._params(req, tools)
        try:
            if req.model.stream:
                async with self.client.messages.stream(**params) as stream:
                    async for text in stream.text_stream:
                        await _emit(on_delta, text)
                    message: Any = await stream.get_final_message()
            else:
                message = await self.client.messages.create(**params)
                for block in message.content:
                    if block.type == "text":
                        await _emit(on_delta, block.text)
        except anthropic.APIStatusError as e:
            raise from_status_error(e.status_code, e.body, e.response.headers) from None
        except anthropic.APIConnectionError as e:
            raise connection_error("anthropic", e) from None
        except anthropic.APIError as e:
            raise ProviderError(f"anthropic: {type(e).__name__}", code="PROVIDER_ERROR") from None
        return _response(message)


def _response(message: Any) -> LlmResponse:
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = [
        ToolCall(id=b.id, name=b.name, arguments=dict(b.input or {}))
        for b in message.content
        if b.type == "tool_use"
    ]
    return LlmResponse(
        text=text or None,
        tool_calls=calls,
        usage=Usage(
            input_tokens=message.usage.input_tokens, output_tokens=message.usage.output_tokens
        ),
        finish_reason=message.stop_reason,
        model=message.model,
    )


async def _emit(on_delta: DeltaSink | None, text: str) -> None:
    if on_delta is None or not text:
        return
    result = on_delta(text)
    if inspect.isawaitable(result):
        await result
