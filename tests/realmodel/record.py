"""Record replies of a real llama.cpp server as SSE transcripts for the fake server.

    python -m tests.realmodel.record        (after tests/realmodel/setup.sh)

Starts the server plain and with `--chat_format chatml-function-calling`, sends each
request below streamed, and writes the raw response body to
tests/fakes/transcripts/<name>.sse, which the fake OpenAI server replays byte for byte
(`model: replay-<name>`). Also keeps what the server answers to an assistant turn with
`content: null` (llamacpp_null_content_500.json) and prints its answer to `content: ""`. Re-record on purpose only, and review the diff.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.openai_server import TRANSCRIPTS
from tests.realmodel.server import llama_server

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
FORCED = {"type": "function", "function": {"name": "get_weather"}}
LONG_PROMPT = "Repeat after me. " + "The quick brown fox jumps over the lazy dog. " * 300

PLAIN: dict[str, dict[str, Any]] = {
    "llamacpp_text": {
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 24,
        "temperature": 0,
    },
    "llamacpp_cut_off": {
        "messages": [{"role": "user", "content": "Tell me a long story about a dragon."}],
        "max_tokens": 6,
        "temperature": 0,
    },
    "llamacpp_context_overflow": {
        "messages": [{"role": "user", "content": LONG_PROMPT}],
        "max_tokens": 16,
    },
}
FUNCTION_CALLING: dict[str, dict[str, Any]] = {
    "llamacpp_tool_call": {
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": FORCED,
        "max_tokens": 64,
        "temperature": 0,
    },
}


async def record(url: str, name: str, body: dict[str, Any]) -> None:
    payload = {"model": "smollm2", "stream": True,
               "stream_options": {"include_usage": True}, **body}  # fmt: skip
    async with (
        httpx.AsyncClient(timeout=120) as http,
        http.stream("POST", f"{url}/chat/completions", json=payload) as resp,
    ):
        raw = (await resp.aread()).decode()
    print(f"{name}: HTTP {resp.status_code}, {len(raw)} bytes")
    (TRANSCRIPTS / f"{name}.sse").write_text(raw.replace("\r\n", "\n"))


async def null_content(url: str) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
    ]  # fmt: skip
    body = {"model": "smollm2", "messages": messages, "tools": [WEATHER_TOOL], "max_tokens": 8}
    async with httpx.AsyncClient(timeout=120) as http:
        for content in (None, ""):
            messages[1]["content"] = content
            r = await http.post(f"{url}/chat/completions", json=body)
            print(f"assistant content {json.dumps(content)}: HTTP {r.status_code} {r.text[:300]}")
            if content is None:
                (TRANSCRIPTS / "llamacpp_null_content_500.json").write_text(r.text)


async def main() -> None:
    TRANSCRIPTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        async with llama_server(Path(tmp)) as plain:
            for name, body in PLAIN.items():
                await record(plain.url, name, body)
        async with llama_server(Path(tmp), function_calling=True) as fc:
            for name, body in FUNCTION_CALLING.items():
                await record(fc.url, name, body)
            await null_content(fc.url)


if __name__ == "__main__":
    asyncio.run(main())
