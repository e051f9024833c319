"""The `openai` provider: chat completions with tools over any OpenAI-compatible server.

An endpoint's `base_url` points it at OpenAI, vLLM, Ollama, llama.cpp, LM Studio or
OpenRouter alike, so the messages keep to what all of them accept: an assistant turn
that carries tool calls has `content: ""` (llama.cpp answers `null` with HTTP 500),
each `tool` message carries its `tool_call_id`. Streamed tool calls are assembled by
`index`: the id and name are taken once (llama.cpp repeats the name in every chunk;
OpenAI sends it once) and the argument fragments concatenated. The SDK's own retries
are off (Temporal retries the activity); usage is asked for in streams and estimated,
marked so, when the server sends none. The API key lives only in the worker's settings.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import httpx
import openai
from openai import AsyncOpenAI

from activities.llm.base import DeltaSink, ProviderError
from activities.llm.errors import connection_error, from_status_error
from activities.llm.usage import estimate_usage
from duratask.settings import ModelEndpoint
from workflows.models import ChatMessage, LlmRequest, LlmResponse, ToolCall, Usage


def to_openai_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content or ""})
        elif m.role == "assistant":
            # "" rather than null: llama.cpp's server rejects null, the others accept ""
            msg: dict[str, Any] = {"role": "assistant", "content": m.content or ""}
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

    def __init__(self, endpoint: ModelEndpoint, label: str = "openai") -> None:
        key = endpoint.api_key.get_secret_value() if endpoint.api_key else "not-needed"
        self.label = label
        self.client = AsyncOpenAI(
            api_key=key,
            base_url=endpoint.base_url,
            organization=endpoint.organization,
            timeout=endpoint.timeout_s,
            max_retries=0,
        )

    async def listed_model(self) -> str | None:
        """The first model the server lists (`GET /models`): a local server's default."""
        try:
            page = await self.client.models.list()
        except openai.APIConnectionError as e:
            raise connection_error(self.label, e) from None
        except openai.APIError:
            return None
        return page.data[0].id if page.data else None

    def _params(self, req: LlmRequest, tools: list[dict[str, Any]]) -> dict[str, Any]:
        m = req.model
        params: dict[str, Any] = {
            "model": m.name,
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
            if req.model.streamed:
                return await self._streamed(req, params, on_delta)
            return await self._whole(req, params, on_delta)
        except openai.APIStatusError as e:
            raise from_status_error(e.status_code, e.body, e.response.headers) from None
        except openai.APIConnectionError as e:
            raise connection_error(self.label, e) from None
        except httpx.TransportError as e:  # the connection broke mid-stream
            raise connection_error(self.label, e) from None
        except openai.APIError as e:
            raise ProviderError(f"{type(e).__name__}: {e}", code="PROVIDER_ERROR") from None

    async def _whole(
        self, req: LlmRequest, params: dict[str, Any], on_delta: DeltaSink | None
    ) -> LlmResponse:
        resp = await self.client.chat.completions.create(**params)
        if not resp.choices:
            return LlmResponse(model=resp.model, usage=estimate_usage(req.messages, None, []))
        choice = resp.choices[0]
        calls = [
            ToolCall(
                id=c.id or f"call_{i}",
                name=c.function.name,  # type: ignore[union-attr]
                arguments=parse_arguments(c.function.arguments),  # type: ignore[union-attr]
            )
            for i, c in enumerate(choice.message.tool_calls or [])
        ]
        await _emit(on_delta, choice.message.content or "")
        text = choice.message.content
        usage = (
            Usage(
                input_tokens=resp.usage.prompt_tokens,
                output_tokens=resp.usage.completion_tokens,
            )
            if resp.usage
            else estimate_usage(req.messages, text, calls)
        )
        return LlmResponse(
            text=text or None,
            tool_calls=calls,
            usage=usage,
            finish_reason=choice.finish_reason,
            model=resp.model,
        )

    async def _streamed(
        self, req: LlmRequest, params: dict[str, Any], on_delta: DeltaSink | None
    ) -> LlmResponse:
        stream = await self.client.chat.completions.create(
            **params, stream=True, stream_options={"include_usage": True}
        )
        text: list[str] = []
        calls = ToolCallAssembler()
        usage: Usage | None = None
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
                    if delta is None:
                        continue
                    if delta.content:
                        text.append(delta.content)
                        await _emit(on_delta, delta.content)
                    for tc in delta.tool_calls or []:
                        fn = tc.function
                        calls.add(
                            tc.index,
                            tc.id,
                            fn.name if fn else None,
                            fn.arguments if fn else None,
                        )
        joined = "".join(text)
        tool_calls = calls.result()
        return LlmResponse(
            text=joined or None,
            tool_calls=tool_calls,
            usage=usage or estimate_usage(req.messages, joined, tool_calls),
            finish_reason=finish,
            model=model,
        )


class ToolCallAssembler:
    """Streamed tool-call fragments put back together, keyed by `index`.

    The id and the name are taken from the first fragment that has them: servers differ
    on whether they repeat them (llama.cpp sends the full name in every chunk). The
    arguments are the concatenation of every fragment's. A fragment with a new id at an
    index already in use starts a new call (servers that send each call whole, index 0)."""

    def __init__(self) -> None:
        self._slots: list[dict[str, str]] = []
        self._by_index: dict[int, dict[str, str]] = {}

    def add(self, index: int | None, id: str | None, name: str | None, args: str | None) -> None:
        if index is None:  # no index at all: a new id starts a call, the rest continue it
            slot = self._slots[-1] if self._slots and not id else None
        else:
            slot = self._by_index.get(index)
            if slot is not None and id and slot["id"] and id != slot["id"]:
                slot = None
        if slot is None:
            slot = {"id": "", "name": "", "args": ""}
            self._slots.append(slot)
            if index is not None:
                self._by_index[index] = slot
        if id and not slot["id"]:
            slot["id"] = id
        if name and not slot["name"]:
            slot["name"] = name
        if args:
            slot["args"] += args

    def result(self) -> list[ToolCall]:
        return [
            ToolCall(
                id=slot["id"] or f"call_{i}",
                name=slot["name"],
                arguments=parse_arguments(slot["args"]),
            )
            for i, slot in enumerate(self._slots)
        ]
