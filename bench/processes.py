"""Gateways and workers as separate processes for the scale benchmarks, the way a
deployment runs them: the scale-out test tier's cluster (tests/scaleout/cluster.py) on
this process's dev server, with a SQLite store file shared by the processes.

Also: start many runs through a gateway with bounded concurrency, wait for their
results, and read a process's resident memory (psutil, children included).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from temporalio.client import Client

from tests.scaleout.cluster import Cluster, Proc, run_cluster

T = TypeVar("T")


def run_and_exit(main: Coroutine[Any, Any, None]) -> None:
    """`asyncio.run(main)`, then leave without interpreter finalization: a Temporal SDK
    core thread still running then can abort the process with a fatal error after the
    figures are printed (seen now and then; the figures are complete by then)."""
    asyncio.run(main)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def quiet() -> None:
    """Figures only: no SDK warnings (e.g. a worker going away) in the output."""
    logging.getLogger("temporalio").setLevel(logging.CRITICAL)


@contextlib.asynccontextmanager
async def bench_cluster(
    client: Client, task_queue: str, tmp: Path, workers: int = 1, **env: str
) -> AsyncIterator[Cluster]:
    """One gateway and `workers` workers; `env` adds DURATASK_* settings to all."""
    url = f"sqlite+aiosqlite:///{tmp / 'duratask.db'}"
    extra = {"DURATASK_LOG_LEVEL": "WARNING", **env}
    async with run_cluster(
        client, task_queue, url, tmp, gateways=1, workers=workers, **extra
    ) as cluster:
        yield cluster


def rss_mb(proc: Proc) -> float:
    """Resident memory of the process and its children, in MB."""
    try:
        p = psutil.Process(proc.pid)
        total = p.memory_info().rss
        for child in p.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
    except psutil.Error:
        return float("nan")
    return total / 1e6


async def bounded(
    items: Iterable[T], fn: Callable[[T], Awaitable[Any]], concurrency: int
) -> list[Any]:
    """`fn` over `items`, at most `concurrency` at a time; results in order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(item: T) -> Any:
        async with sem:
            return await fn(item)

    return list(await asyncio.gather(*(one(i) for i in items)))


async def start_runs(
    http: httpx.AsyncClient, definition_id: str, n: int, concurrency: int
) -> list[str]:
    """Start `n` runs through the gateway; their run ids (a refused start is retried)."""

    async def start(_: int) -> str:
        for _attempt in range(5):
            r = await http.post("/v1/runs", json={"definition_id": definition_id})
            if r.status_code in (200, 201):
                return str(r.json()["run_id"])
            await asyncio.sleep(0.5)
        raise SystemExit(f"start refused: {r.status_code} {r.text[:300]}")

    return await bounded(range(n), start, concurrency)


async def wait_results(
    http: httpx.AsyncClient, run_ids: list[str], concurrency: int, wait: float = 120
) -> dict[str, int]:
    """Wait for every run's end through the gateway; how many ended with each status."""

    async def result(run_id: str) -> str:
        for _attempt in range(10):
            r = await http.get(f"/v1/runs/{run_id}/result", params={"wait": wait})
            if r.status_code == 200:
                return str(r.json()["status"])
            if r.status_code != 202:
                return f"http {r.status_code}"
        return "not ended"

    statuses = await bounded(run_ids, result, concurrency)
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s] = counts.get(s, 0) + 1
    return counts
