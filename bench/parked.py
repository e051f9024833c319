"""Many runs parked on an approval step: what they cost the worker and the gateway, and
how long a worker restart takes to pick them up again.

    python -m bench.parked [--runs 10000] [--cache 1000] [--concurrency 32]

One gateway and one worker, separate processes (bench/processes.py), on one dev
server. N runs of a one-step definition (an approval) are started through the
gateway; once all N wait for approval, the resident memory (RSS) of both processes is
read. Then the worker is restarted (SIGTERM, a new process) and timed: until it polls,
until a first approval sent through the gateway ends its run, and until every one of
the N runs has been approved and ended (each approval is a signal the worker must
handle, replaying the run from its history when it is not in the sticky cache).
`--cache` sets the worker's `DURATASK_MAX_CACHED_WORKFLOWS`; the worker's RSS is
read again after all N were touched. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from bench.processes import (
    bench_cluster,
    bounded,
    quiet,
    rss_mb,
    run_and_exit,
    start_runs,
    wait_results,
)
from bench.server import start_dev_server
from duratask.logging import configure_logging
from tests.scaleout.cluster import Cluster
from workflows import contracts
from workflows.models import RunStatus

APPROVER = "approver@example.com"


def _definition() -> dict[str, object]:
    return {
        "id": "parked",
        "name": "parked",
        "steps": [{"id": "sign_off", "action": "approval", "approvers": [APPROVER]}],
    }


async def _parked(cluster: Cluster, want: int, timeout: float) -> int:
    """Wait until `want` runs wait for approval (visibility); how many do."""
    query = (
        f'{contracts.SA_STATUS.name}="{RunStatus.awaiting_approval.value}" '
        f'AND ExecutionStatus="Running" AND TaskQueue="{cluster.task_queue}"'
    )
    deadline = time.monotonic() + timeout
    count = 0
    while time.monotonic() < deadline:
        count = (await cluster.client.count_workflows(query)).count
        if count >= want:
            break
        await asyncio.sleep(1)
    return count


async def _measure(cluster: Cluster, runs: int, concurrency: int) -> list[str]:
    """Park the runs, read the memory, restart the worker, approve them all: the lines
    of figures to print."""
    async with cluster.http(0) as http, cluster.http(0, "approver") as approver:
        r = await http.put("/v1/definitions/parked", json=_definition())
        if r.status_code not in (200, 201):
            raise SystemExit(f"definition refused: {r.status_code} {r.text}")
        gw, worker = cluster.gateways[0], cluster.workers[0]
        base_gw, base_worker = rss_mb(gw), rss_mb(worker)
        t0 = time.monotonic()
        run_ids = await start_runs(http, "parked", runs, concurrency)
        started_s = time.monotonic() - t0
        parked = await _parked(cluster, runs, timeout=max(120, runs / 5))
        parked_s = time.monotonic() - t0
        gw_rss, worker_rss = rss_mb(gw), rss_mb(worker)

        # a deploy: stop the worker, start a new one
        worker.stop()
        t_restart = time.monotonic()
        new = cluster.spawn("worker")
        await cluster.wait_workers([new], timeout=120)
        polling_s = time.monotonic() - t_restart

        async def approve(run_id: str) -> int:
            r = await approver.post(f"/v1/runs/{run_id}/approvals", json={"decision": "approve"})
            return r.status_code

        first = await approve(run_ids[0])
        first_status = await wait_results(http, run_ids[:1], 1)
        first_s = time.monotonic() - t_restart
        codes = await bounded(run_ids[1:], approve, concurrency)
        ended = await wait_results(http, run_ids, concurrency)
        all_s = time.monotonic() - t_restart
        new_rss, gw_after = rss_mb(new), rss_mb(gw)
    refused = sum(1 for c in [first, *codes] if c != 202)
    lines = [
        f"  started through the gateway : {started_s:.1f} s ({runs / started_s:.0f} runs/s)",
        f"  all waiting for approval    : {parked}/{runs} after {parked_s:.1f} s",
        f"  worker RSS                  : {worker_rss:.0f} MB (idle {base_worker:.0f} MB)",
        f"  gateway RSS                 : {gw_rss:.0f} MB (idle {base_gw:.0f} MB)",
        "worker restart",
        f"  polling again after         : {polling_s:.1f} s",
        f"  first approval processed    : {first_s:.1f} s after the new worker started "
        f"({first_status})",
        f"  all {runs} approved and ended : {all_s:.1f} s "
        f"({runs / (all_s - first_s):.0f} runs/s after the first); {ended}",
        f"  worker RSS after            : {new_rss:.0f} MB; gateway {gw_after:.0f} MB",
    ]
    if refused:
        lines.append(f"  approvals refused           : {refused}")
    return lines


async def main(runs: int, cache: int | None, concurrency: int) -> None:
    configure_logging("WARNING", False)
    quiet()
    env = await start_dev_server()
    tq = f"bench-parked-{uuid.uuid4().hex[:6]}"
    extra = {"DURATASK_MAX_CACHED_WORKFLOWS": str(cache)} if cache is not None else {}
    with tempfile.TemporaryDirectory() as tmp:
        async with bench_cluster(env.client, tq, Path(tmp), workers=1, **extra) as cluster:
            lines = await _measure(cluster, runs, concurrency)
    await env.shutdown()
    cache_note = cache if cache is not None else "default"
    print(f"{runs} runs parked on an approval step (1 gateway, 1 worker; cache {cache_note})")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--cache", type=int, default=None, help="max_cached_workflows")
    parser.add_argument("--concurrency", type=int, default=32)
    a = parser.parse_args()
    run_and_exit(main(a.runs, a.cache, a.concurrency))
