"""Live-events benchmark: `python -m bench.streams [--tokens N] [--rate R] [--clients 1,100]`.

Measures, on a dev server with a real worker and gateway in this process:

- History per `llm_call` step when nobody watches: a 3-step run minus a 1-step run
  (short answers, token streaming on), halved.
- History events added per 1,000 streamed tokens, unwatched and with 1 and 100 SSE
  clients following through the gateway: each run minus the same run with token
  streaming off and nobody watching.
- SSE delivery lag of the model's text (the model produced a fragment -> an SSE
  client received it), p50/p99, with 1 and 100 clients on one run. It includes the
  200 ms coalescing window, the relay (or, before it, the publish signal and the
  shared subscription's poll) and the fan-out to every client.
- `--repeat N` measures the lags N times (each round: every client count, then the raw
  baseline) and prints the median of the rounds' p50 and p99: on a shared machine one
  round can catch a neighbour's burst.
- The raw baseline, measured in the same process: the SDK's Workflow Streams used
  directly (one item per token, 200 ms batches, one subscriber), its lag and its
  history cost against the same workflow not streaming.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.worker import Worker

from activities.llm import activity as llm_activity
from activities.llm.base import DeltaSink
from bench.server import figures_only, start_dev_server
from bench.stream_baseline import RawStreamInput, RawStreamWorkflow, stream_tokens
from tests.stack import Stack, run_stack
from workflows.events import TERMINAL
from workflows.events import EventType as RunEventType
from workflows.models import LlmRequest, LlmResponse, Usage

TOKEN_TIMES: dict[tuple[str, int], float] = {}  # (run_id, token index) -> when written


class PacedProvider:
    """A model that writes `tokens` words at `per_s` words a second, after a pause."""

    name = "bench"

    async def complete(
        self, req: LlmRequest, tools: list[dict[str, Any]], on_delta: DeltaSink | None = None
    ) -> LlmResponse:
        opts = req.model.options
        tokens, per_s = int(opts["tokens"]), float(opts["per_s"])
        await asyncio.sleep(float(opts.get("start_delay_s", 1.0)))
        words = []
        for i in range(tokens):
            word = f"tok{i} "
            words.append(word)
            TOKEN_TIMES[(req.run_id, i)] = time.time()
            if on_delta is not None:
                result = on_delta(word)
                if result is not None:
                    await result
            await asyncio.sleep(1 / per_s)
        return LlmResponse(
            text="".join(words), usage=Usage(output_tokens=tokens), finish_reason="stop"
        )


def definition(tokens: int, per_s: float, steps: int = 1, delay: float = 1.5) -> dict[str, Any]:
    opts = {"tokens": tokens, "per_s": per_s, "start_delay_s": delay}
    return {
        "id": f"bench-stream-{steps}-{tokens}",
        "model": {"provider": "bench", "name": "paced", "options": opts},
        "steps": [
            {"id": f"write{i}", "action": "llm_call", "prompt": "write"} for i in range(steps)
        ],
    }


def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def history_counts(client: Client, workflow_id: str) -> dict[str, int]:
    counts = {"total": 0, "signals": 0, "updates": 0}
    async for ev in client.get_workflow_handle(workflow_id).fetch_history_events():
        counts["total"] += 1
        if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            counts["signals"] += 1
        elif ev.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            counts["updates"] += 1
    return counts


async def sse_client(
    http: httpx.AsyncClient, run_id: str, lags: list[float], token_lags: list[float]
) -> int:
    received = 0
    async with aconnect_sse(http, "GET", f"/v1/runs/{run_id}/events") as source:
        async for sse in source.aiter_sse():
            now = time.time()
            ev = json.loads(sse.data)
            received += 1
            if ev["type"] == RunEventType.LLM_DELTA:
                lags.append(now - datetime.fromisoformat(ev["time"]).timestamp())
                for word in ev["data"]["text"].split():
                    token_lags.append(now - TOKEN_TIMES[(run_id, int(word[3:]))])
            if ev["type"] in TERMINAL:
                break
    return received


async def duratask_run(
    stack: Stack, clients: int, definition_id: str = "bench-stream-1-1000"
) -> tuple[list[float], list[float], str]:
    run = await stack.start(definition_id)
    run_id = run["run_id"]
    lags: list[float] = []
    token_lags: list[float] = []
    if clients:
        limits = httpx.Limits(max_connections=clients + 10)
        async with httpx.AsyncClient(base_url=stack.url, timeout=120, limits=limits) as http:
            await asyncio.gather(
                *(sse_client(http, run_id, lags, token_lags) for _ in range(clients))
            )
    result = await stack.wait_result(run_id, 120)
    assert result["status"] == "completed", result
    return lags, token_lags, run_id


async def raw_run(client: Client, queue: str, inp: RawStreamInput) -> tuple[list[float], str]:
    wf_id = f"raw-stream-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(RawStreamWorkflow.run, inp, id=wf_id, task_queue=queue)
    lags: list[float] = []
    if inp.stream:
        async for item in WorkflowStreamClient.create(client, wf_id).subscribe(["events"]):
            if item.data["type"] == RunEventType.LLM_DELTA:
                lags.append(time.time() - item.data["t"])
            if item.data["type"] == RunEventType.RUN_COMPLETED:
                break
    await handle.result()
    return lags, wf_id


def p50_p99(lags: list[float]) -> tuple[float, float]:
    return pct(lags, 0.5) * 1000, pct(lags, 0.99) * 1000


def line(label: str, lags: list[float]) -> str:
    return (f"  {label:<34} p50 {pct(lags, 0.5) * 1000:6.0f} ms   p99 {pct(lags, 0.99) * 1000:6.0f} ms"
            f"   ({len(lags)} samples)")  # fmt: skip


async def main(tokens: int, per_s: float, client_counts: list[int], repeat: int = 1) -> None:
    llm_activity.PROVIDERS["bench"] = lambda _s: PacedProvider()
    env = await start_dev_server()
    client = env.client
    raw_queue = f"bench-raw-{uuid.uuid4().hex[:6]}"
    per_k = 1000 / tokens
    print(f"streams benchmark: {tokens} tokens at {per_s:.0f} tokens/s per run")
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            Worker(
                client,
                task_queue=raw_queue,
                workflows=[RawStreamWorkflow],
                activities=[stream_tokens],
            ),  # fmt: skip
            run_stack(env, f"bench-s-{uuid.uuid4().hex[:6]}", Path(tmp) / "a") as stack,
            run_stack(
                env, f"bench-n-{uuid.uuid4().hex[:6]}", Path(tmp) / "b", stream_llm_deltas=False
            ) as quiet,  # fmt: skip
        ):
            for s in (stack, quiet):
                await s.put_definition(definition(tokens, per_s))
            # --- history per llm_call step, nobody watching (short answers, streaming on)
            for n in (1, 3):
                await stack.put_definition(definition(5, 500.0, steps=n, delay=0.0))
            _, _, one = await duratask_run(stack, 0, "bench-stream-1-5")
            _, _, three = await duratask_run(stack, 0, "bench-stream-3-5")
            h1 = (await history_counts(client, one))["total"]
            h3 = (await history_counts(client, three))["total"]
            print("\nHistory per llm_call step, nobody watching (token streaming on)")
            print(f"  1-step run: {h1} events; 3-step run: {h3} events "
                  f"-> {(h3 - h1) / 2:.1f} per further llm_call step")  # fmt: skip

            runs: dict[int, str] = {}
            figures: dict[str, list[tuple[float, float]]] = {}
            for rep in range(repeat):
                print("\nSSE delivery lag, per token (token written -> SSE client received it)"
                      + (f", round {rep + 1} of {repeat}" if repeat > 1 else ""))  # fmt: skip
                batch_lines = []
                for n in client_counts:
                    lags, token_lags, runs[n] = await duratask_run(stack, n)
                    label = f"duratask, {n} client(s) on one run"
                    print(line(label, token_lags))
                    figures.setdefault(label, []).append(p50_p99(token_lags))
                    batch_lines.append(line(f"duratask, {n} client(s), per event", lags))
                raw_lags, raw_id = await raw_run(client, raw_queue, RawStreamInput(tokens, per_s))
                label = "raw Workflow Streams, 1 subscriber"
                print(line(label, raw_lags))
                figures.setdefault(label, []).append(p50_p99(raw_lags))
                print("llm.delta events (coalesced batches; lag from their first token)")
                for text in batch_lines:
                    print(text)
            if repeat > 1:
                print(f"\nSSE delivery lag per token, median of {repeat} rounds' p50 and p99")
                raw_rounds = figures["raw Workflow Streams, 1 subscriber"]
                for label, rounds in figures.items():
                    p50 = statistics.median(r[0] for r in rounds)
                    p99 = statistics.median(r[1] for r in rounds)
                    pairs = zip(rounds, raw_rounds, strict=True)
                    over = statistics.median(r[1] - w[1] for r, w in pairs)
                    print(f"  {label:<34} p50 {p50:6.0f} ms   p99 {p99:6.0f} ms   "
                          f"(p99 of each round: {', '.join(f'{r[1]:.0f}' for r in rounds)}; "
                          f"p99 over raw's in its round: {over:+.0f} ms)")  # fmt: skip

            _, _, quiet_id = await duratask_run(quiet, 0)
            _, _, unwatched_id = await duratask_run(stack, 0)
            _, raw_quiet_id = await raw_run(
                client, raw_queue, RawStreamInput(tokens, per_s, stream=False)
            )
            plain = await history_counts(client, quiet_id)
            raw = await history_counts(client, raw_id)
            raw_plain = await history_counts(client, raw_quiet_id)
            print(f"\nHistory events per 1,000 streamed tokens ({tokens} tokens in one call; "
                  f"against the same run with token streaming off: {plain['total']} events)")  # fmt: skip
            rows = [("unwatched", unwatched_id)] + [(f"{n} client(s)", r) for n, r in runs.items()]
            for label, run_id in rows:
                c = await history_counts(client, run_id)
                cost = (c["total"] - plain["total"]) * per_k
                print(f"  duratask, {label:<12}: {c['total']:4d} events -> +{cost:.0f} per 1k tokens "
                      f"({c['signals']} signals, {c['updates']} subscription polls)")  # fmt: skip
            r_cost = (raw["total"] - raw_plain["total"]) * per_k
            print(f"  raw Workflow Streams, 1 subscriber: {raw['total']} events vs "
                  f"{raw_plain['total']} not -> +{r_cost:.0f} per 1k tokens "
                  f"({raw['signals']} publish signals, {raw['updates']} polls)")  # fmt: skip
    await env.shutdown()


if __name__ == "__main__":
    figures_only()  # the figures, not the run logs
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0, help="tokens per second")
    parser.add_argument("--clients", default="1,100", help="comma-separated client counts")
    parser.add_argument(
        "--repeat", type=int, default=1, help="lag rounds (a loaded machine: take the median)"
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",") if c]
    asyncio.run(main(args.tokens, args.rate, counts, args.repeat))
