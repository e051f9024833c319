"""A raw Temporal worker process for the scale benchmarks: the baseline workflow and
its no-op activity on one task queue, until SIGTERM. The same SDK, converter and
process shape as a duratask worker, without duratask.

    python -m bench.raw_worker <temporal address> <task queue>
"""

from __future__ import annotations

import asyncio
import signal
import sys

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.baseline import RawWorkflow, noop


async def main(address: str, task_queue: str) -> None:
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with Worker(client, task_queue=task_queue, workflows=[RawWorkflow], activities=[noop]):
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
