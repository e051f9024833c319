"""Console benchmark: `python -m bench.console [--events 500] [--runs 1000]`.

On a dev server with a real worker and gateway in this process, and Debian's chromium
driven by Playwright:

- A run with about `--events` events: time from navigation to its page being usable
  (DOM ready, graph drawn), and to every event shown in the timeline; against the raw
  Temporal read of the same run (its state query, and its full event history).
- A runs list over `--runs` runs: time and size of the first page and of the next two
  (Temporal visibility page tokens: a page never loads the others), against the raw
  `list_workflows` page of the same size.

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import async_playwright
from pydantic import SecretStr

from bench.server import start_dev_server
from duratask.logging import configure_logging
from duratask.settings import ApiKey
from tests.browser.conftest import CHROMIUM_ARGS, chromium_path
from tests.stack import Stack, run_stack
from workflows.run_workflow import TaskRunWorkflow

KEY = "bench-key"


async def timed(coro):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    result = await coro
    return result, (time.perf_counter() - t) * 1000


async def big_run(stack: Stack, events: int) -> str:
    steps = max(1, events // 3)  # a notify step publishes started, completed, progress
    await stack.put_definition({
        "id": "many",
        "limits": {"max_steps": steps + 10},
        "steps": [{"id": f"s{i}", "action": "notify", "message": f"step {i}"}
                  for i in range(steps)],
    })  # fmt: skip
    run = await stack.start("many")
    await stack.wait_result(run["run_id"], wait=300)
    return str(run["run_id"])


async def main(events: int, runs: int, samples: int) -> None:
    configure_logging("WARNING", False)
    path = chromium_path()
    if path is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    env = await start_dev_server()
    tq = f"bench-console-{uuid.uuid4().hex[:8]}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with run_stack(
                env, tq, Path(tmp), headers={"Authorization": f"Bearer {KEY}"},
                auth_required=True, api_keys=[ApiKey(key=SecretStr(KEY), identity="bench")],
                log_level="WARNING",
            ) as stack, async_playwright() as pw:  # fmt: skip
                browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
                ctx = await browser.new_context(base_url=stack.url)
                page = await ctx.new_page()
                await page.goto("/ui/login")
                await page.get_by_label("API key or JWT").fill(KEY)
                await page.get_by_role("button", name="Sign in").click()
                await page.wait_for_url(f"{stack.url}/ui")

                run_id = await big_run(stack, events)
                count = len((await stack.http.get(f"/v1/runs/{run_id}")).json()["events"])
                usable, full = [], []
                for _ in range(samples):
                    t = time.perf_counter()
                    await page.goto(f"/ui/runs/{run_id}", wait_until="domcontentloaded")
                    await page.locator(".graph .node").first.wait_for()
                    usable.append((time.perf_counter() - t) * 1000)
                    await page.wait_for_function(
                        "document.getElementById('timeline').dataset.done === 'true'"
                    )
                    full.append((time.perf_counter() - t) * 1000)
                shown = await page.locator("#timeline li").count()
                handle = stack.client.get_workflow_handle(run_id)
                q = [(await timed(handle.query(TaskRunWorkflow.state)))[1] for _ in range(samples)]
                h = [(await timed(handle.fetch_history()))[1] for _ in range(samples)]
                raw_q, raw_h = statistics.median(q), statistics.median(h)
                print(f"run page, {count} events retained in state ({shown} shown, "
                      f"{samples} loads, medians):")  # fmt: skip
                print(f"  usable (DOM + graph)   {statistics.median(usable):8.0f} ms"
                      f"   x{statistics.median(usable) / raw_h:5.1f} raw history fetch"
                      f" ({raw_h:.0f} ms), x{statistics.median(usable) / raw_q:5.1f}"
                      f" raw state query ({raw_q:.0f} ms)")  # fmt: skip
                print(
                    f"  all events in timeline {statistics.median(full):8.0f} ms"
                    f"   x{statistics.median(full) / raw_h:5.1f} raw history fetch"
                )

                # ---------------------------------------------------- the runs list
                await stack.put_definition({"id": "later", "steps": [
                    {"id": "n", "action": "notify", "message": "x"}]})  # fmt: skip
                at = (datetime.now(UTC) + timedelta(days=1)).isoformat()
                t = time.perf_counter()
                sem = asyncio.Semaphore(32)

                async def one() -> None:
                    async with sem:
                        await stack.start("later", start_at=at)

                await asyncio.gather(*(one() for _ in range(runs)))
                print(f"runs list over {runs} runs (started delayed in "
                      f"{time.perf_counter() - t:.0f} s, not executed):")  # fmt: skip
                url: str | None = "/ui?definition_id=later&size=50"
                for n in range(3):
                    assert url is not None
                    t = time.perf_counter()
                    resp = await page.goto(url, wait_until="domcontentloaded")
                    ms = (time.perf_counter() - t) * 1000
                    size = len(await resp.body()) if resp else 0
                    rows = await page.locator("tbody#run-rows tr[data-run]").count()
                    raw_iter = stack.client.list_workflows(
                        "WorkflowType = 'TaskRunWorkflow'", page_size=50
                    )
                    _, raw = await timed(raw_iter.fetch_next_page())
                    print(f"  page {n + 1}: {rows} rows, {size / 1024:.0f} KiB, {ms:.0f} ms"
                          f"   x{ms / raw:5.1f} raw list_workflows page ({raw:.0f} ms)")  # fmt: skip
                    nxt = page.locator("#next-page")
                    url = await nxt.get_attribute("href") if await nxt.count() else None
                await browser.close()
    finally:
        await env.shutdown()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=5)
    a = ap.parse_args()
    asyncio.run(main(a.events, a.runs, a.samples))
