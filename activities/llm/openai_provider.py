"""The `openai` provider: chat completions with tools over any OpenAI-compatible server.

`base_url` from settings points it at OpenAI, vLLM, Ollama, llama.cpp, LM Studio or
OpenRouter alike. The SDK's own retries are off (Temporal retries the activity), the
reply is streamed so text reaches `on_delta` as it arrives and tool calls are put
together from their chunks, and usage comes from the final chunk
(`stream_options.include_usage`). The API key lives only in the worker's settings.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import openai
from openai import AsyncOpenAI

from activities.llm.base import DeltaSink, ProviderError
from activities.llm.errors import connection_error, from_status_error
from duratask.settings import OpenAISettings
from workflows.models import ChatMessage, LlmRequest, LlmResponse, ToolCall, Usage


def to_openai_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content or ""})
        elif m.role == "assistant":
            msg: dict[str, Any] = {"role": "assistant", "content": m.content}
            if m.tool_calls:
                msg["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in m.tool_calls
                ]
            out.append(msg)
        else:
            out.append({"role": m.role, "content": m.content or ""})
    return out


def to_openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": t} for t in tools]


def parse_arguments(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {"_raw": raw}  # the tool rejects it and the model hears why
    return value if isinstance(value, dict) else {"_value": value}


async def _emit(on_delta: DeltaSink | None, text: str) -> None:
    if on_delta is None or not text:
        return
    result = on_delta(text)
    if inspect.isawaitable(result):
        await result


class OpenAIProvider:
    name = "openai"

    def __init__(self, settings: OpenAISettings) -> None:
        key = settings.api_key.get_secret_value() if settings.api_key else "not-needed"
        self.client = AsyncOpenAI(
            api_key=key,
            base_url=settings.base_url,
            organization=settings.organization,
            timeout=settings.timeout_s,
            max_retries=0,
        )

    def _params(self, req: LlmRequest, tools: list[dict[str, Any]]) -> dict[str, Any]:
        m = req.model
        params: dict[str, Any] = {
            "model": m.name or "gpt-4o-mini",
            "messages": to_openai_messages(req.messages),
        }
        if tools:
            params["tools"] = to_openai_tools(tools)
        for field in ("temperature", "max_tokens", "top_p"):
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
                return await self._streamed(params, on_delta)
            return await self._whole(params, on_delta)
        except openai.APIStatusError as e:
            raise from_status_error(e.status_code, e.body, e.response.headers) from None
        except openai.APIConnectionError as e:
            raise connection_error("openai", e) from None
        except openai.APIError as e:
            raise ProviderError(f"openai: {type(e).__name__}", code="PROVIDER_ERROR") from None

    async def _whole(self, params: dict[str, Any], on_delta: DeltaSink | None) -> LlmResponse:
        resp = await self.client.chat.completions.create(**params)
        choice = resp.choices[0]
        calls = [
            ToolCall(
                id=c.id,
                name=c.function.name,  # type: ignore[union-attr]
                arguments=parse_arguments(c.function.arguments),  # type: ignore[union-attr]
            )
            for c in choice.message.tool_calls or []
        ]
        await _emit(on_delta, choice.message.content or "")
        usage = resp.usage
        return LlmResponse(
            text=choice.message.content,
            tool_calls=calls,
            usage=Usage(
                input_tokens=usage.prompt_tokens if usage else 0,
                output_tokens=usage.completion_tokens if usage else 0,
            ),
            finish_reason=choice.finish_reason,
            model=resp.model,
        )

    async def _streamed(self, params: dict[str, Any], on_delta: DeltaSink | None) -> LlmResponse:
        stream = await self.client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
        text: list[str] = []
        partial: dict[int, dict[str, str]] = {}
        usage = Usage()
        finish: str | None = None
        model: str | None = None
        async with stream:
            async for chunk in stream:
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = Usage(
                        input_tokens=chunk.usage.prompt_tokens,
                        output_tokens=chunk.usage.completion_tokens,
                    )
                for choice in chunk.choices:
                    finish = choice.finish_reason or finish
                    delta = choice.delta
                    if delta.content:
                        text.append(delta.content)
                        await _emit(on_delta, delta.content)
                    for tc in delta.tool_calls or []:
                        slot = partial.setdefault(tc.index, {"id": "", "name": "", "args": ""})
                        if tc.id:
                            slot["id"] = tc.id
                        if tc.function and tc.function.name:
                            slot["name"] += tc.function.name
                        if tc.function and tc.function.arguments:
                            slot["args"] += tc.function.arguments
        calls = [
            ToolCall(
                id=slot["id"] or f"call_{i}",
                name=slot["name"],
                arguments=parse_arguments(slot["args"]),
            )
            for i, slot in sorted(partial.items())
        ]
        return LlmResponse(
            text="".join(text) or None,
            tool_calls=calls,
            usage=usage,
            finish_reason=finish,
            model=model,
        )
