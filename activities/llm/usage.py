"""Token usage when the model server reports none: an estimate, marked as one.

Some OpenAI-compatible servers (llama.cpp's among them) send no usage in a stream even
when asked with `stream_options.include_usage`. Recording 0 tokens and $0 would make a
run look free; a rough count (about four characters a token, the usual rule for
English text with BPE tokenizers) marked `estimated: true` is honest about both.
"""

from __future__ import annotations

import json

from workflows.models import ChatMessage, ToolCall, Usage

CHARS_PER_TOKEN = 4
PER_MESSAGE_TOKENS = 4  # role and separators a chat template adds to every message


def _tokens(chars: int) -> int:
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def estimate_usage(messages: list[ChatMessage], text: str | None, calls: list[ToolCall]) -> Usage:
    prompt_chars = sum(
        len(m.content or "") + sum(len(c.name) + len(json.dumps(c.arguments)) for c in m.tool_calls)
        for m in messages
    )
    output_chars = len(text or "") + sum(len(c.name) + len(json.dumps(c.arguments)) for c in calls)
    return Usage(
        input_tokens=_tokens(prompt_chars) + PER_MESSAGE_TOKENS * len(messages),
        output_tokens=max(1, _tokens(output_chars)) if (text or calls) else 0,
        estimated=True,
    )
