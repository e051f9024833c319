"""The `scripted` provider: deterministic, offline model replies.

`name: echo` (and no script) answers with the last user message, so a demo shows
its rendered prompt. `name: script` plays `model.script` in order (text, tool calls, delays,
injected errors), choosing the reply by how many assistant turns the conversation
already has, so a retried or replayed call gets the same reply. A reply's `delay`
stands for a slow model; a call restarted by a steer skips it, so tests can steer
a slow call and see the restarted one answer.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from activities.llm.base import DeltaSink, ProviderError
from workflows.models import LlmRequest, LlmResponse, ToolCall, Usage


def _tokens(text: str) -> int:
    return max(1, len(text.split())) if text else 0


class ScriptedProvider:
    name = "scripted"

    async def complete(
        self,
        req: LlmRequest,
        tools: list[dict[str, Any]] | None = None,
        on_delta: DeltaSink | None = None,
    ) -> LlmResponse:
        prompt_text = "\n".join(m.content or "" for m in req.messages)
        usage_in = _tokens(prompt_text)
        # a step that gives a `script` plays it, even if the name it inherits is `echo`
        if not req.model.script and (req.model.name or "echo") == "echo":
            last_user = next(
                (m.content or "" for m in reversed(req.messages) if m.role == "user"), ""
            )
            await self._stream(last_user, on_delta)
            return LlmResponse(
                text=last_user,
                usage=Usage(input_tokens=usage_in, output_tokens=_tokens(last_user)),
                finish_reason="stop",
                model="scripted/echo",
            )
        script = req.model.script or []
        index = sum(1 for m in req.messages if m.role == "assistant")
        if index >= len(script):
            raise ProviderError(
                f"script exhausted: reply {index + 1} requested, {len(script)} scripted",
                status=400,
                code="SCRIPT_EXHAUSTED",
            )
        reply = script[index]
        if reply.delay and not req.steers:  # a call restarted by a steer answers at once
            await asyncio.sleep(reply.delay)
        if reply.error:
            err = reply.error
            raise ProviderError(
                str(err.get("message", "scripted error")),
                status=err.get("status"),
                retry_after=err.get("retry_after"),
            )
        calls = [
            ToolCall(
                id=str(c.get("id") or f"call_{index}_{i}"),
                name=str(c["name"]),
                arguments=dict(c.get("arguments") or c.get("args") or {}),
            )
            for i, c in enumerate(reply.tool_calls)
        ]
        text = reply.text or ""
        await self._stream(text, on_delta)
        return LlmResponse(
            text=reply.text,
            tool_calls=calls,
            usage=Usage(input_tokens=usage_in, output_tokens=_tokens(text) + 5 * len(calls)),
            finish_reason="tool_calls" if calls else "stop",
            model="scripted/script",
        )

    async def _stream(self, text: str, on_delta: DeltaSink | None) -> None:
        if on_delta is None or not text:
            return
        for word in text.split(" "):
            result = on_delta(word + " ")
            if inspect.isawaitable(result):
                await result
