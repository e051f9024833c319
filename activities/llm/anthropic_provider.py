"""The `anthropic` provider: the Messages API with tools.

Same contract as the openai provider: SDK retries off, Temporal retries; text
streams to `on_delta`; failures map to `ProviderError` with the provider's code and
message and Retry-After. Anthropic wants the system prompt apart, tool results as
`tool_result` blocks in a user message, and an explicit `max_tokens`. Roles must
alternate, so consecutive messages of one role (tool results, then a steer) become
one message of several blocks, and no text block is ever empty (the API refuses
those). Streamed tool input arrives as `input_json_delta` fragments; the SDK's
stream accumulates them into the final message's `tool_use` blocks.
"""

from __future__ import annotations

import inspect
from typing import Any

import anthropic
import httpx
from anthropic import AsyncAnthropic

from activities.llm.base import DeltaSink, ProviderError
from activities.llm.errors import connection_error, from_status_error
from activities.llm.usage import estimate_usage
from duratask.settings import ModelEndpoint
from workflows.models import ChatMessage, LlmRequest, LlmResponse, ToolCall, Usage

DEFAULT_MAX_TOKENS = 4096


def to_anthropic(messages: list[ChatMessage]) -> tuple[str | None, list[dict[str, Any]]]:
    """(system, messages): tool results are `tool_result` blocks; same-role turns merge."""
    system = "\n\n".join(m.content or "" for m in messages if m.role == "system") or None
    out: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if not blocks:
            return
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})

    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": m.tool_call_id,
                "content": m.content or "",
            }
            if (m.content or "").startswith('{"error":'):
                block["is_error"] = True
            add("user", [block])
        elif m.role == "assistant":
            blocks: list[dict[str, Any]] = []
            if m.content:
                blocks.append({"type": "text", "text": m.content})
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in m.tool_calls
            ]
            add("assistant", blocks)
        elif m.content:
            add("user", [{"type": "text", "text": m.content}])
    return system, out


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, endpoint: ModelEndpoint, label: str = "anthropic") -> None:
        self.label = label
        self.client = AsyncAnthropic(
            api_key=endpoint.api_key.get_secret_value() if endpoint.api_key else "not-needed",
            base_url=endpoint.base_url,
            timeout=endpoint.timeout_s,
            max_retries=0,
        )

    async def listed_model(self) -> str | None:
        """The first model the server lists (`GET /v1/models`)."""
        try:
            page = await self.client.models.list()
        except anthropic.APIConnectionError as e:
            raise connection_error(self.label, e) from None
        except anthropic.APIError:
            return None
        return page.data[0].id if page.data else None

    def _params(self, req: LlmRequest, tools: list[dict[str, Any]]) -> dict[str, Any]:
        m = req.model
        system, messages = to_anthropic(req.messages)
        params: dict[str, Any] = {
            "model": m.name,
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
            if req.model.streamed:
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
            raise connection_error(self.label, e) from None
        except httpx.TransportError as e:  # the connection broke mid-stream
            raise connection_error(self.label, e) from None
        except anthropic.APIError as e:
            raise ProviderError(f"{type(e).__name__}: {e}", code="PROVIDER_ERROR") from None
        return _response(req, message)


def _response(req: LlmRequest, message: Any) -> LlmResponse:
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = [
        ToolCall(id=b.id, name=b.name, arguments=dict(b.input or {}))
        for b in message.content
        if b.type == "tool_use"
    ]
    reported = getattr(message, "usage", None)
    usage = (
        Usage(input_tokens=reported.input_tokens or 0, output_tokens=reported.output_tokens or 0)
        if reported is not None and (reported.input_tokens or reported.output_tokens)
        else estimate_usage(req.messages, text, calls)
    )
    return LlmResponse(
        text=text or None,
        tool_calls=calls,
        usage=usage,
        finish_reason=message.stop_reason,
        model=message.model,
    )


async def _emit(on_delta: DeltaSink | None, text: str) -> None:
    if on_delta is None or not text:
        return
    result = on_delta(text)
    if inspect.isawaitable(result):
        await result
