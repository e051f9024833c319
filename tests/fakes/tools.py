"""Custom tools for tests, loaded the way users load theirs: `tool_modules` in settings.

`add` and `get_weather` are pure; `record` is a side effect counted per idempotency key, so a test can
prove a call ran once even across retries and worker restarts; `flaky_record` fails
with a crash on its first attempt (Temporal retries it) and records on the second.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from pydantic import BaseModel

from activities.tools.registry import ToolContext, ToolRegistry

EFFECTS: Counter[str] = Counter()  # idempotency key -> times the side effect happened
ATTEMPTS: Counter[str] = Counter()  # idempotency key -> times the tool was entered
KEYS: list[str] = []


class AddArgs(BaseModel):
    a: float
    b: float


class WeatherArgs(BaseModel):
    city: str


class RecordArgs(BaseModel):
    note: str
    delay_s: float = 0.0


async def add(args: AddArgs, ctx: ToolContext) -> dict[str, float]:
    return {"sum": args.a + args.b}


async def get_weather(args: WeatherArgs, ctx: ToolContext) -> dict[str, object]:
    return {"city": args.city, "temp_c": 21, "sky": "clear"}


async def record(args: RecordArgs, ctx: ToolContext) -> dict[str, str]:
    ATTEMPTS[ctx.idempotency_key] += 1
    if args.delay_s:
        await asyncio.sleep(args.delay_s)
    EFFECTS[ctx.idempotency_key] += 1  # not deduplicated: a repeat would show as 2
    KEYS.append(ctx.idempotency_key)
    return {"recorded": args.note}


async def flaky_record(args: RecordArgs, ctx: ToolContext) -> dict[str, str]:
    ATTEMPTS[ctx.idempotency_key] += 1
    if ATTEMPTS[ctx.idempotency_key] == 1:
        raise ConnectionError("downstream unavailable (first attempt)")
    EFFECTS[ctx.idempotency_key] += 1
    KEYS.append(ctx.idempotency_key)
    return {"recorded": args.note}


def register(registry: ToolRegistry) -> None:
    registry.tool("add", "Add two numbers.", AddArgs)(add)
    registry.tool("get_weather", "The weather in a city.", WeatherArgs)(get_weather)
    registry.tool("record", "Record a note (a side effect).", RecordArgs, True)(record)
    registry.tool("flaky_record", "Record a note; fails once first.", RecordArgs, True)(
        flaky_record
    )
