"""What encryption and tracing cost: `python -m bench.security_telemetry [--runs N]`.

A 1-step run through the gateway, worker and dev server, timed end to end, in four
set-ups: plain, payloads encrypted (AES-256-GCM codec), tracing on (spans made, none
exported) with worker metrics, and both; each against the raw Temporal baseline of the
same run (one no-op activity), as ratios. Tracing records every span in an SDK tracer
provider with no exporter (the cost of making spans, not of shipping them). Printed,
never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.__main__ import _definition, _fmt, _time
from bench.baseline import RawWorkflow, noop
from bench.server import figures_only, start_dev_server
from duratask.codec import new_key
from duratask.telemetry import prometheus_runtime
from tests.stack import Stack, free_port, run_gateway, stack_settings
from worker.client import connect
from worker.main import build_worker

SETUPS: dict[str, dict[str, Any]] = {
    "plain": {},
    "encrypted": {"encryption_keys": SecretStr(f"bench:{new_key()}")},
    "tracing+metrics": {"tracing": True, "worker_metrics_address": "metrics"},
    "encrypted+tracing": {"encryption_keys": SecretStr(f"bench:{new_key()}"), "tracing": True},
}


@contextlib.asynccontextmanager
async def stack(env: WorkflowEnvironment, tmp: Path, **kw: Any) -> AsyncIterator[Stack]:
    if kw.get("worker_metrics_address") == "metrics":
        kw["worker_metrics_address"] = f"127.0.0.1:{free_port()}"
    tq = f"bench-{uuid.uuid4().hex[:6]}"
    settings = stack_settings(env, tq, tmp, **kw)
    address = settings.worker_metrics_address
    client = await connect(settings, runtime=prometheus_runtime(address) if address else None)
    async with (
        build_worker(client, settings, tq),
        run_gateway(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        yield Stack(url, http, client, settings, tq)


async def main(runs: int) -> None:
    trace.set_tracer_provider(TracerProvider())  # spans are made and dropped
    env = await start_dev_server()
    raw_queue = f"bench-raw-{uuid.uuid4().hex[:6]}"

    async def raw() -> None:
        await env.client.execute_workflow(
            RawWorkflow.run, 1, id=f"raw-{uuid.uuid4().hex}", task_queue=raw_queue
        )

    print(f"1-step run, {runs} runs each")
    async with Worker(env.client, task_queue=raw_queue, workflows=[RawWorkflow], activities=[noop]):
        raw_s = await _time(raw, runs)
        print(f"  {'raw Temporal':18}: {_fmt(raw_s)}")
        for name, kw in SETUPS.items():
            with tempfile.TemporaryDirectory() as tmp:
                async with stack(env, Path(tmp), **kw) as s:
                    await s.put_definition(_definition(1))

                    async def one(s: Stack = s) -> None:
                        run = await s.start("bench-1")
                        assert (await s.wait_result(run["run_id"]))["status"] == "completed"

                    got = await _time(one, runs)
            ratio = statistics.median(got) / statistics.median(raw_s)
            print(f"  {name:18}: {_fmt(got)}  {ratio:.2f}x raw")
    await env.shutdown()


if __name__ == "__main__":
    figures_only()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    asyncio.run(main(parser.parse_args().runs))
