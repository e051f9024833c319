"""A small OpenAI-compatible (and Anthropic-shaped) server for provider tests, on loopback.

The model name picks the behaviour, so one server serves every scenario:

- `text`: a plain answer; `tools`: two tool calls, then an answer quoting the results;
- `rate-limited`: 429 with Retry-After the first time, then an answer;
- `refusing` / `refusing-long`: 429 every time, with Retry-After 1 s / 120 s;
- `pause`: answers like `text`, after 2 s;
- `flaky`: 500 the first time, then an answer; `bad`: 400 with an OpenAI-style error;
- `slow`: a streamed reply of one chunk every 0.2 s for a minute (to be cancelled);
- `broken`: 500 with the server's message every time (a request the server cannot take);
- `replay-<name>`: streams `transcripts/<name>.sse`, a reply recorded from a real
  llama.cpp server (tests/realmodel/record.py), byte for byte.

Like llama.cpp's server it answers an assistant turn with `content: null` with HTTP 500
(that is what the real one does), and it lists its models at `/v1/models`. Keep it for
what a real server cannot be made to do (429 with Retry-After, a given 400 or 500).

It records every request (headers included) and when each `slow` stream closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.stack import serve_asgi

RETRY_AFTER_S = 2
PAUSE_S = 2.0
REFUSING = {"refusing": 1, "refusing-long": 120}  # model -> the Retry-After of its 429s
TRANSCRIPTS = Path(__file__).parent / "transcripts"
LISTED_MODEL = "local-model-q4"


def transcript(name: str) -> list[str]:
    """The SSE events of a recorded reply, each with its trailing blank line."""
    text = (TRANSCRIPTS / f"{name}.sse").read_text()
    return [event + "\n\n" for event in text.split("\n\n") if event.strip()]


@dataclass
class Seen:
    path: str
    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class FakeLlmServer:
    requests: list[Seen] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    slow_started: asyncio.Event = field(default_factory=asyncio.Event)
    slow_closed_at: float | None = None
    url: str = ""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
            ]
        )

    def times(self, model: str) -> list[float]:
        return [r.at for r in self.requests if r.model == model]

    # ------------------------------------------------------------ openai
    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": LISTED_MODEL, "object": "model", "owned_by": "me", "permissions": []}
        ]})  # fmt: skip

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model"))
        self.requests.append(
            Seen(request.url.path, model, body, dict(request.headers), time.monotonic())
        )
        self.counts[model] += 1
        n = self.counts[model]
        if model == "rate-limited" and n == 1:
            return _error(429, "Rate limit reached for requests", "rate_limit_exceeded",
                          {"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip
        if model in REFUSING:  # an endpoint out of quota: 429 every time
            return _error(429, "Rate limit reached for requests", "rate_limit_exceeded",
                          {"Retry-After": str(REFUSING[model])})  # fmt: skip
        if model == "pause":  # a model that takes its time: answers like `text` after 2 s
            await asyncio.sleep(PAUSE_S)
        if model == "flaky" and n == 1:
            return _error(500, "The server had an error", "server_error")
        if model == "bad":
            return _error(400, "Invalid value for 'temperature': too hot", "invalid_value")
        if model == "broken":
            return _error(500, "llama_decode failed: cannot take this request", "server_error")
        if any(m.get("role") == "assistant" and m.get("content", "") is None
               for m in body.get("messages", [])):  # fmt: skip
            # what llama.cpp's server answers (recorded): a 500 listing validation errors
            error = (TRANSCRIPTS / "llamacpp_null_content_500.json").read_text()
            return Response(error, status_code=500, media_type="application/json")
        if model.startswith("replay-"):
            events = transcript(model.removeprefix("replay-"))
            return StreamingResponse(_replay(events), media_type="text/event-stream")
        if model == "slow":
            return StreamingResponse(self._slow(), media_type="text/event-stream")
        text, calls = self._reply(model, body)
        if body.get("stream"):
            return StreamingResponse(_stream(model, text, calls), media_type="text/event-stream")
        return JSONResponse(_completion(model, text, calls))

    def _reply(self, model: str, body: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
        messages = body.get("messages", [])
        if model == "tools":
            results = [m["content"] for m in messages if m.get("role") == "tool"]
            if not results:
                return None, [
                    {"id": "call_a", "name": "add", "arguments": {"a": 2, "b": 3}},
                    {"id": "call_b", "name": "add", "arguments": {"a": 10, "b": 20}},
                ]
            return "sums: " + ", ".join(results), []
        last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        return f"You said: {last}", []

    async def _slow(self) -> AsyncIterator[str]:
        self.slow_started.set()
        try:
            for i in range(300):
                yield _sse(_chunk("slow", {"content": f"w{i} "}))
                await asyncio.sleep(0.2)
            yield "data: [DONE]\n\n"
        finally:
            self.slow_closed_at = time.monotonic()

    # ------------------------------------------------------------ anthropic
    async def messages(self, request: Request) -> Response:
        body = await request.json()
        model = str(body.get("model"))
        self.requests.append(
            Seen(request.url.path, model, body, dict(request.headers), time.monotonic())
        )
        self.counts[model] += 1
        if model == "bad":
            return JSONResponse(
                {
                    "type": "error",
                    "error": {"type": "invalid_request_error", "message": "max_tokens: too large"},
                },
                status_code=400,
            )
        has_results = any(
            isinstance(m.get("content"), list)
            and any(b.get("type") == "tool_result" for b in m["content"])
            for m in body.get("messages", [])
        )
        if model == "tools" and not has_results:
            content: list[dict[str, Any]] = [
                {"type": "tool_use", "id": "tu_1", "name": "add", "input": {"a": 1, "b": 2}}
            ]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": "anthropic says hi"}]
            stop = "end_turn"
        if body.get("stream"):
            return StreamingResponse(_anthropic_stream(model, content, stop),
                                     media_type="text/event-stream")  # fmt: skip
        return JSONResponse(
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": {"input_tokens": 11, "output_tokens": 7},
            }
        )


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"


async def _anthropic_stream(
    model: str, content: list[dict[str, Any]], stop: str
) -> AsyncIterator[str]:
    message: dict[str, Any] = {"id": "msg_1", "type": "message", "role": "assistant", "model": model,
               "content": [], "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": 11, "output_tokens": 1}}  # fmt: skip
    yield _event("message_start", {"message": message})
    for i, block in enumerate(content):
        if block["type"] == "text":
            yield _event("content_block_start",
                         {"index": i, "content_block": {"type": "text", "text": ""}})  # fmt: skip
            for j, word in enumerate(block["text"].split(" ")):
                delta = {"type": "text_delta", "text": word if j == 0 else " " + word}
                yield _event("content_block_delta", {"index": i, "delta": delta})
        else:
            start = {**block, "input": {}}
            yield _event("content_block_start", {"index": i, "content_block": start})
            args = json.dumps(block["input"])
            for part in (args[:3], args[3:]):
                delta = {"type": "input_json_delta", "partial_json": part}
                yield _event("content_block_delta", {"index": i, "delta": delta})
        yield _event("content_block_stop", {"index": i})
    yield _event("message_delta", {"delta": {"stop_reason": stop, "stop_sequence": None},
                                   "usage": {"output_tokens": 7}})  # fmt: skip
    yield _event("message_stop", {})


async def _replay(events: list[str]) -> AsyncIterator[str]:
    for event in events:
        yield event
        await asyncio.sleep(0)


def _error(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}},
        status_code=status,
        headers=headers,
    )


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


USAGE = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}


async def _stream(model: str, text: str | None, calls: list[dict[str, Any]]) -> AsyncIterator[str]:
    yield _sse(_chunk(model, {"role": "assistant", "content": ""}))
    for i, word in enumerate((text or "").split(" ") if text else []):
        yield _sse(_chunk(model, {"content": word if i == 0 else " " + word}))
    for i, c in enumerate(calls):
        args = json.dumps(c["arguments"])
        head = {"index": i, "id": c["id"], "type": "function",
                "function": {"name": c["name"], "arguments": ""}}  # fmt: skip
        yield _sse(_chunk(model, {"tool_calls": [head]}))
        for part in (args[: len(args) // 2], args[len(args) // 2 :]):
            yield _sse(
                _chunk(model, {"tool_calls": [{"index": i, "function": {"arguments": part}}]})
            )
    yield _sse(_chunk(model, {}, "tool_calls" if calls else "stop"))
    yield _sse({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [], "usage": USAGE})  # fmt: skip
    yield "data: [DONE]\n\n"


def _completion(model: str, text: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in calls
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
        ],
        "usage": USAGE,
    }


@contextlib.asynccontextmanager
async def serve_fake_llm() -> AsyncIterator[FakeLlmServer]:
    fake = FakeLlmServer()
    async with serve_asgi(fake.app(), force_exit=True) as url:
        fake.url = url
        yield fake
