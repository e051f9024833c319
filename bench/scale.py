"""Throughput of 1-step runs with 1 worker vs 2 workers, separate processes, on one
dev server; raw Temporal beside it in the same run.

    python -m bench.scale [--runs 400] [--concurrency 48]

duratask: one gateway process and one, then two, worker processes (bench/processes.py);
N one-step scripted runs are each started with `POST /v1/runs` and waited for with
`GET /v1/runs/{id}/result`, at most C in flight. Raw Temporal: the same N workflows
(one no-op activity each, bench/baseline.py) through the raw client, with one, then
two, raw worker processes (bench/raw_worker.py). Throughput is N over the time from
the first start to the last result. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

import psutil
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from bench.baseline import RawWorkflow
from bench.processes import bench_cluster, bounded, quiet, run_and_exit
from bench.server import start_dev_server
from duratask.logging import configure_logging
from tests.scaleout.cluster import Cluster

T = TypeVar("T")
DEFINITION = {
    "id": "scale-1",
    "name": "scale-1",
    "steps": [{"id": "s0", "action": "llm_call", "prompt": "one step"}],
}


async def _duratask(cluster: Cluster, runs: int, concurrency: int) -> tuple[float, int]:
    """runs/s and how many runs did not complete."""
    async with cluster.http(0) as http:

        async def one(_: int) -> bool:
            r = await http.post("/v1/runs", json={"definition_id": "scale-1"})
            if r.status_code not in (200, 201):
                return False
            run_id = r.json()["run_id"]
            r = await http.get(f"/v1/runs/{run_id}/result", params={"wait": 120})
            return r.status_code == 200 and r.json()["status"] == "completed"

        await bounded(range(concurrency), one, concurrency)  # warm-up
        t0 = time.perf_counter()
        ok = await bounded(range(runs), one, concurrency)
        return runs / (time.perf_counter() - t0), ok.count(False)


async def _raw(client: Client, task_queue: str, runs: int, concurrency: int) -> float:
    async def one(_: int) -> None:
        await client.execute_workflow(
            RawWorkflow.run, 1, id=f"raw-{uuid.uuid4().hex}", task_queue=task_queue
        )

    await bounded(range(concurrency), one, concurrency)  # warm-up
    t0 = time.perf_counter()
    await bounded(range(runs), one, concurrency)
    return runs / (time.perf_counter() - t0)


@contextlib.contextmanager
def _raw_workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def _spawn_raw(procs: list[subprocess.Popen[bytes]], address: str, task_queue: str) -> None:
    procs.append(
        subprocess.Popen(
            [sys.executable, "-m", "bench.raw_worker", address, task_queue],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )


async def _wait_pollers(client: Client, task_queue: str, n: int) -> None:
    for _ in range(600):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            )
        )
        if len({p.identity for p in resp.pollers}) >= n:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"{n} raw workers not polling {task_queue}")


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def _server_pids() -> list[int]:
    me = psutil.Process()
    return [p.pid for p in me.children(recursive=True) if "temporal" in p.name()]


async def _metered(
    groups: dict[str, list[int]], runs: int, fn: Callable[[], Awaitable[T]]
) -> tuple[T, dict[str, float]]:
    """`fn()`'s value and the CPU milliseconds per run each group of processes used."""
    before = {k: _cpu_s(v) for k, v in groups.items()}
    value = await fn()
    return value, {k: (_cpu_s(v) - before[k]) * 1000 / runs for k, v in groups.items()}


def _cpu_line(cpu: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())


async def main(runs: int, concurrency: int) -> None:
    configure_logging("WARNING", False)
    quiet()
    env = await start_dev_server()
    client = env.client
    address = client.service_client.config.target_host
    raw_tq = f"bench-scale-raw-{uuid.uuid4().hex[:6]}"
    dt_tq = f"bench-scale-{uuid.uuid4().hex[:6]}"
    figures: dict[str, float] = {}
    failed: dict[str, int] = {}
    cpu: dict[str, dict[str, float]] = {}
    bench = [psutil.Process().pid]
    with _raw_workers() as raw_procs:
        for n in (1, 2):
            _spawn_raw(raw_procs, address, raw_tq)
            await _wait_pollers(client, raw_tq, n)
            groups = {"client": bench, "server": _server_pids(),
                      "workers": [p.pid for p in raw_procs]}  # fmt: skip
            figures[f"raw {n}"], cpu[f"raw {n}"] = await _metered(
                groups, runs, partial(_raw, client, raw_tq, runs, concurrency)
            )
    with tempfile.TemporaryDirectory() as tmp:
        async with bench_cluster(client, dt_tq, Path(tmp), workers=1) as cluster:
            async with cluster.http(0) as http:
                r = await http.put("/v1/definitions/scale-1", json=DEFINITION)
                if r.status_code not in (200, 201):
                    raise SystemExit(f"definition refused: {r.status_code} {r.text}")
            for n in (1, 2):
                if n == 2:
                    await cluster.wait_workers([cluster.spawn("worker")])
                groups = {"client": bench, "server": _server_pids(),
                          "gateway": [cluster.gateways[0].pid],
                          "workers": [w.pid for w in cluster.workers]}  # fmt: skip
                (figures[f"dt {n}"], failed[f"dt {n}"]), cpu[f"dt {n}"] = await _metered(
                    groups, runs, partial(_duratask, cluster, runs, concurrency)
                )
    await env.shutdown()
    print(f"1-step runs, {runs} per pass, {concurrency} in flight, one dev server")
    print("  workers   raw Temporal      duratask (gateway)   duratask/raw")
    for n in (1, 2):
        raw, dt = figures[f"raw {n}"], figures[f"dt {n}"]
        print(f"  {n}         {raw:6.1f} runs/s     {dt:6.1f} runs/s        {dt / raw:.2f}x")
    print(
        f"  2 vs 1 worker: raw {figures['raw 2'] / figures['raw 1']:.2f}x, "
        f"duratask {figures['dt 2'] / figures['dt 1']:.2f}x"
    )
    print("  CPU ms per run (warm-up included):")
    for k, used in cpu.items():
        print(f"    {k} worker(s): {_cpu_line(used)}")
    for k, count in failed.items():
        if count:
            print(f"  {k} worker(s): {count} runs did not complete")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=48)
    a = parser.parse_args()
    run_and_exit(main(a.runs, a.concurrency))
