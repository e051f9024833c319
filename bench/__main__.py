"""Run the benchmarks: `make bench` (or `python -m bench [--runs N]`).

Each scenario times duratask end to end (HTTP start -> completed result through the
gateway, worker and dev server) and the raw Temporal baseline (client start -> result
of a workflow running the same number of activities), in the same process and run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.worker import Worker

from bench.baseline import RawWorkflow, noop
from bench.processes import run_and_exit
from bench.server import figures_only, start_dev_server
from tests.stack import run_stack


def _definition(steps: int) -> dict[str, object]:
    return {
        "id": f"bench-{steps}",
        "steps": [
            {"id": f"s{i}", "action": "llm_call", "prompt": f"step {i}"} for i in range(steps)
        ],
    }


async def _time(fn, runs: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Samples of one scenario (bench/security_telemetry.py times its variants so)."""
    await fn()  # warm-up
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t0)
    return samples


async def _time_pairs(raw, dt, runs: int) -> tuple[list[float], list[float]]:  # type: ignore[no-untyped-def]
    """Samples of both, interleaved (raw first on even rounds, duratask first on odd):
    load from other processes on the machine then weighs on both sides alike, and the
    ratio is one of a single pass rather than of two passes minutes apart."""
    await raw()  # warm-up
    await dt()
    raw_s: list[float] = []
    dt_s: list[float] = []
    for i in range(runs):
        pair = ((raw, raw_s), (dt, dt_s)) if i % 2 == 0 else ((dt, dt_s), (raw, raw_s))
        for fn, samples in pair:
            t0 = time.perf_counter()
            await fn()
            samples.append(time.perf_counter() - t0)
    return raw_s, dt_s


_PHASES = ("raw start", "raw result", "dt start", "dt result")


def _fmt(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:7.1f} ms  (min {min(samples) * 1000:.1f})"


async def main(runs: int) -> None:
    env = await start_dev_server()
    client = env.client
    raw_queue = f"bench-raw-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            Worker(client, task_queue=raw_queue, workflows=[RawWorkflow], activities=[noop]),
            run_stack(env, f"bench-{uuid.uuid4().hex[:6]}", Path(tmp)) as stack,
        ):
            phases: dict[str, list[float]] = {k: [] for k in _PHASES}
            failed: list[str] = []
            for steps in (1, 10):
                await stack.put_definition(_definition(steps))
                for samples in phases.values():
                    samples.clear()
                failed.clear()

                async def raw(n: int = steps) -> None:
                    t0 = time.perf_counter()
                    handle = await client.start_workflow(
                        RawWorkflow.run, n, id=f"raw-{uuid.uuid4().hex}", task_queue=raw_queue
                    )
                    t1 = time.perf_counter()
                    await handle.result()
                    phases["raw start"].append(t1 - t0)
                    phases["raw result"].append(time.perf_counter() - t1)

                async def duratask(n: int = steps) -> None:
                    t0 = time.perf_counter()
                    run = await stack.start(f"bench-{n}")
                    t1 = time.perf_counter()
                    result = await stack.wait_result(run["run_id"])
                    phases["dt start"].append(t1 - t0)
                    phases["dt result"].append(time.perf_counter() - t1)
                    if result["status"] != "completed":
                        failed.append(f"{run['run_id']}: {result['status']}")

                raw_s, dt_s = await _time_pairs(raw, duratask, runs)
                ratio = statistics.median(dt_s) / statistics.median(raw_s)
                print(f"\n{steps}-step run, {runs} runs each (interleaved)")
                print(f"  raw Temporal : {_fmt(raw_s)}")
                print(f"  duratask     : {_fmt(dt_s)}")
                print(f"  ratio        : {ratio:.2f}x raw")
                med = {k: statistics.median(v) * 1000 for k, v in phases.items()}
                print(f"  start        : POST /v1/runs {med['dt start']:.1f} ms vs "
                      f"start_workflow {med['raw start']:.1f} ms")  # fmt: skip
                print(f"  result       : GET .../result {med['dt result']:.1f} ms vs "
                      f"handle.result {med['raw result']:.1f} ms")  # fmt: skip
                if steps > 1:
                    per_raw = statistics.median(raw_s) / steps * 1000
                    per_dt = statistics.median(dt_s) / steps * 1000
                    print(f"  per step     : {per_dt:.1f} ms vs {per_raw:.1f} ms raw "
                          f"({per_dt / per_raw:.2f}x)")  # fmt: skip
                if failed:
                    print(f"  NOT completed: {len(failed)} runs, e.g. {failed[0]}")
    await env.shutdown()


if __name__ == "__main__":
    figures_only()  # the figures, not the run logs
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    run_and_exit(main(args.runs))
