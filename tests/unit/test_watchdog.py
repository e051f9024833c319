"""The conftest watchdog: a hung async test fails instead of hanging the suite, and a
test's own `asyncio.timeout` / `wait_for` still raises its own TimeoutError."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import _watchdog


async def test_a_hung_coroutine_fails_with_the_watchdog_message() -> None:
    async def hangs() -> None:
        await asyncio.Event().wait()

    with pytest.raises(pytest.fail.Exception, match="hung: still running after"):
        await _watchdog(hangs, 0.2)()


async def test_the_tests_own_timeout_is_not_the_watchdogs() -> None:
    async def own_timeout() -> None:
        await asyncio.wait_for(asyncio.Event().wait(), 0.05)

    with pytest.raises(TimeoutError):
        await _watchdog(own_timeout, 30)()


async def test_a_finished_test_returns_its_value() -> None:
    async def quick(x: int) -> int:
        return x + 1

    assert await _watchdog(quick, 30)(x=1) == 2
