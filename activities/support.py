"""Helpers every activity uses: heartbeating while awaiting, and bounded outputs.

Heartbeats are how a cancellation reaches a running activity, so anything that can
take more than a few seconds runs under `heartbeating()`. Outputs are cut to a byte
budget before they enter history, so no step can push a run past the 2 MB limit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio import activity

HEARTBEAT_EVERY_S = 0.5


@asynccontextmanager
async def heartbeating(every: float = HEARTBEAT_EVERY_S, **details: Any) -> AsyncIterator[None]:
    """Heartbeat in the background while the body runs (no-op outside an activity)."""
    if not activity.in_activity():
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat(details or None)
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def truncate_text(text: str, max_bytes: int) -> tuple[str, bool]:
    data = text.encode()
    if len(data) <= max_bytes:
        return text, False
    cut = data[:max_bytes].decode(errors="ignore")
    return cut + f"\n[truncated: {len(data)} bytes, kept {max_bytes}]", True


def truncate_value(value: Any, max_bytes: int) -> tuple[Any, bool]:
    """Keep a value whole when it fits; otherwise return its JSON text, truncated."""
    if isinstance(value, str):
        return truncate_text(value, max_bytes)
    text = json.dumps(value, default=str, sort_keys=True)
    if len(text.encode()) <= max_bytes:
        return value, False
    return truncate_text(text, max_bytes)
