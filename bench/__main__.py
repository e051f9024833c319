"""Run the benchmarks: `make bench` (or `python -m bench [--runs N]`).

Each scenario times duratask end to end (HTTP start -> completed result through the
gateway, worker and dev server) and the raw Temporal baseline (client start -> result
of a workflow running the same number of activities), in the same process and run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from temporalio.worker import Worker

from bench.baseline import RawWorkflow, noop
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
    await fn()  # warm-up
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - t0)
    return samples


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
            for steps in (1, 10):
                await stack.put_definition(_definition(steps))

                async def raw(n: int = steps) -> None:
                    await client.execute_workflow(
                        RawWorkflow.run, n, id=f"raw-{uuid.uuid4().hex}", task_queue=raw_queue
                    )

                async def duratask(n: int = steps) -> None:
                    run = await stack.start(f"bench-{n}")
                    result = await stack.wait_result(run["run_id"])
                    assert result["status"] == "completed", result

                raw_s = await _time(raw, runs)
                dt_s = await _time(duratask, runs)
                ratio = statistics.median(dt_s) / statistics.median(raw_s)
                print(f"\n{steps}-step run, {runs} runs each")
                print(f"  raw Temporal : {_fmt(raw_s)}")
                print(f"  duratask     : {_fmt(dt_s)}")
                print(f"  ratio        : {ratio:.2f}x raw")
                if steps > 1:
                    per_raw = statistics.median(raw_s) / steps * 1000
                    per_dt = statistics.median(dt_s) / steps * 1000
                    print(f"  per step     : {per_dt:.1f} ms vs {per_raw:.1f} ms raw "
                          f"({per_dt / per_raw:.2f}x)")  # fmt: skip
    await env.shutdown()


if __name__ == "__main__":
    figures_only()  # the figures, not the run logs
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.runs))
