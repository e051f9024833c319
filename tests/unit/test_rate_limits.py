"""Endpoint rate limits in the shared store (duratask/store/rate_limits.py), and the
fallback chain of a model spec.

`place` is the arithmetic; the limiter is tested on SQLite and a real PostgreSQL, with
two limiters on two engines (two workers) sharing one endpoint's limit, and with
reservations taken concurrently: no 60-second window ever holds more than the limit.
"""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from duratask.store.db import create_engine, migrate
from duratask.store.rate_limits import REQUESTS, TOKENS, RateLimiter, place
from workflows.definition import ModelSpec, resolve_model


def _max_in_window(starts: list[float], window: float = 60.0) -> int:
    starts = sorted(starts)
    return max(sum(1 for s in starts if a <= s < a + window - 1e-9) for a in starts)


def test_place_under_the_limits_starts_now() -> None:
    assert place([], 100.0, 2, 1000, 10) == (100.0, None)
    assert place([(90.0, 10)], 100.0, 2, 1000, 10) == (100.0, None)


def test_place_waits_for_the_oldest_request_to_leave_the_window() -> None:
    at, why = place([(50.0, 1), (90.0, 1)], 100.0, 2, None, 1)
    assert (at, why) == (110.0, REQUESTS)


def test_place_waits_until_enough_tokens_left_the_window() -> None:
    calls = [(50.0, 600), (70.0, 300)]
    at, why = place(calls, 100.0, None, 1000, 200)
    assert (at, why) == (110.0, TOKENS)  # 300 + 200 fit once the 600 are gone
    # bigger than the whole limit: it goes alone
    assert place(calls, 100.0, None, 1000, 5000) == (130.0, TOKENS)


def test_place_queues_behind_reservations_already_handed_out() -> None:
    at, why = place([(100.0, 1), (160.0, 1)], 120.0, 2, None, 1)
    assert at == 160.0 and why == REQUESTS


def test_fallback_entries_merge_over_the_model_and_the_definition_level() -> None:
    definition = ModelSpec(
        endpoint="a", name="x", temperature=0.2, fallback=[ModelSpec(endpoint="b", name="y")]
    )
    step = ModelSpec(max_tokens=50)  # a step that sets one field keeps the chain
    chain = resolve_model(ModelSpec(provider="scripted", name="echo"), definition, step).chain()
    assert [(m.endpoint, m.name, m.temperature, m.max_tokens) for m in chain] == [
        ("a", "x", 0.2, 50),
        ("b", "y", 0.2, 50),
    ]
    assert all(m.fallback is None for m in chain)
    off = resolve_model(ModelSpec(), definition, ModelSpec(fallback=[])).chain()
    assert len(off) == 1
    with pytest.raises(ValidationError, match="fallbacks of its own"):
        ModelSpec(fallback=[ModelSpec(fallback=[ModelSpec(name="z")])])


async def test_two_limiters_share_one_limit(db_url: str) -> None:
    """Two workers (two engines) reserving at once for one endpoint: every 60 s window
    holds at most the limit, and the ones past it are placed a window later."""
    engines = [create_engine(db_url), create_engine(db_url)]
    try:
        await migrate(engines[0])
        limiters = [RateLimiter(e) for e in engines]
        now = 1_000_000.0
        slots = await asyncio.gather(
            *(limiters[i % 2].reserve("shared", 3, None, 1, now=now) for i in range(7))
        )
        starts = [s.at for s in slots]
        assert sorted(starts)[:3] == [now] * 3
        assert _max_in_window(starts) == 3
        assert max(starts) >= now + 120.0  # 7 calls at 3 a minute: the last two minutes on
        assert {s.limit for s in slots if s.at > now} == {REQUESTS}
        # another endpoint has its own limit
        other = await limiters[1].reserve("other", 3, None, 1, now=now)
        assert other.at == now
        # a claimed slot cannot be claimed twice; a released one frees its place
        first = min(slots, key=lambda s: s.at)
        assert await limiters[1].claim(first.id, "shared", now=now) == now
        assert await limiters[0].claim(first.id, "shared", now=now) is None
        last = max(slots, key=lambda s: s.at)
        await limiters[0].release(last.id)
        again = await limiters[0].reserve("shared", 3, None, 1, now=now)
        assert again.at == last.at
    finally:
        for e in engines:
            await e.dispose()


async def test_tokens_count_what_the_call_really_used(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        limiter = RateLimiter(engine)
        now = 2_000_000.0
        first = await limiter.reserve("tpm", None, 1000, 900, now=now)
        assert first.at == now
        await limiter.settle(first.id, 100)  # it used far less than estimated
        second = await limiter.reserve("tpm", None, 1000, 800, now=now + 1)
        assert second.at == now + 1
        third = await limiter.reserve("tpm", None, 1000, 500, now=now + 2)
        assert (third.at, third.limit) == (now + 61.0, TOKENS)  # once both left the window
    finally:
        await engine.dispose()
