"""Insights over the real gateway on the dev server: stats per owner and definition
(proactive runs made by a real schedule), run comparison, and definition health that
turns to `regression` when runs really use more tokens or fail in a row.

Definition ids and owners carry a per-test suffix: the dev server is shared by the
session, and visibility queries see every run in the namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment

from duratask.settings import OpenAISettings
from tests.fakes.openai_server import serve_fake_llm
from tests.integration.test_run_tree import eventually
from tests.stack import Stack, run_stack, serve_asgi

BOOM = {"provider": "scripted", "name": "script",
        "script": [{"error": {"status": 400, "message": "bad request"}}]}  # fmt: skip


def greet(did: str) -> dict[str, Any]:
    return {
        "id": did,
        "inputs": {"name": {"type": "string", "required": True}},
        "steps": [
            {"id": "hello", "action": "llm_call", "prompt": "Say hello to {{ input.name }}."}
        ],
    }


def broken(did: str) -> dict[str, Any]:
    return {"id": did, "steps": [{"id": "ask", "action": "llm_call", "prompt": "x", "model": BOOM}]}


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DURATASK_URL": stack.url, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True,
                          text=True, env=env, timeout=60)  # fmt: skip


async def run(stack: Stack, did: str, **body: Any) -> dict[str, Any]:
    started = await stack.start(did, **body)
    return await stack.wait_result(started["run_id"])


async def stats(stack: Stack, **params: Any) -> dict[str, Any]:
    r = await stack.http.get("/v1/stats", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_stats_per_owner_and_definition_with_proactive_runs(stack: Stack) -> None:
    sfx = uuid.uuid4().hex[:6]
    g, b, ada, bob = f"greet-{sfx}", f"broken-{sfx}", f"ada-{sfx}", f"bob-{sfx}"
    await stack.put_definition(greet(g))
    await stack.put_definition(broken(b))
    results = await asyncio.gather(
        run(stack, g, input={"name": "Ada"}, owner=ada),
        run(stack, g, input={"name": "Ada Augusta King, Countess of Lovelace"}, owner=ada),
        run(stack, b, owner=ada),
        run(stack, g, input={"name": "Bob"}, owner=bob),
    )
    assert [r["status"] for r in results] == ["completed", "completed", "failed", "completed"]
    # a proactive run: fired by a real schedule (trigger=schedule)
    far = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    body = {"id": f"ins-{sfx}", "definition_id": g, "input": {"name": "Sched"}, "owner": ada,
            "at": far}  # fmt: skip
    r = await stack.http.post("/v1/schedules", json=body)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert (await stack.http.post(f"/v1/schedules/{sid}/trigger")).status_code == 202

    async def ada_settled() -> dict[str, Any] | None:
        s = await stats(stack, owner=ada)
        settled = {"Completed": 3, "Failed": 1}  # listed and counted alike (GROUP BY)
        done = s["by_status"] == {"completed": 3, "failed": 1}
        return s if done and s["by_execution_status"] == settled else None

    s = await eventually(ada_settled)
    assert (s["total"], s["finished"], s["success_rate"], s["capped"]) == (4, 4, 0.75, False)
    assert s["triggers"]["proactive"] == 1 and s["triggers"]["manual"] == 3
    assert s["by_definition"] == {g: 3, b: 1}
    assert s["duration_ms"]["count"] == 3 and s["duration_ms"]["p50"] > 0
    assert s["duration_ms"]["p95"] >= s["duration_ms"]["p50"]
    long_tokens = results[1]["state"]["usage"]
    assert s["tokens"]["total"] >= long_tokens["input_tokens"] + long_tokens["output_tokens"]

    by_def = await stats(stack, definition_id=g)
    assert by_def["total"] == 4 and by_def["success_rate"] == 1.0
    both = await stats(stack, definition_id=g, owner=ada)
    assert both["total"] == 3 and both["triggers"]["proactive"] == 1

    capped = await stats(stack, owner=ada, max_runs=2)
    assert capped["capped"] and capped["scanned"] == 2 and capped["total"] == 4
    assert capped["success_rate"] == 0.75 and "more than 2 runs" in capped["notes"][0]

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await stats(stack, owner=ada, since=future))["total"] == 0
    assert (await stats(stack, owner=ada, window="1h"))["total"] == 4
    for bad, why in (({"window": "soon"}, "invalid duration"),
                     ({"window": "1h", "since": future}, "either 'since' or 'window'"),
                     ({"max_runs": 10**9}, "max_runs may be at most")):  # fmt: skip
        r = await stack.http.get("/v1/stats", params=bad)
        assert r.status_code == 422 and why in r.json()["detail"], r.text

    out = await asyncio.to_thread(cli, stack, "stats", "--owner", ada, "--window", "1h")
    assert out.returncode == 0, out.stderr
    assert "75.0%" in out.stdout and "proactive" in out.stdout and g in out.stdout
    await stack.http.delete(f"/v1/schedules/{sid}")


async def test_compare_runs_side_by_side(stack: Stack) -> None:
    sfx = uuid.uuid4().hex[:6]
    g, slow = f"greet-{sfx}", f"slow-{sfx}"
    await stack.put_definition(greet(g))
    await stack.put_definition(
        {
            "id": slow,
            "steps": [
                {"id": "hello", "action": "llm_call", "prompt": "hi"},
                {"id": "nap", "action": "wait", "duration": "1h"},
            ],
        }
    )
    a, b, same = await asyncio.gather(
        run(stack, g, input={"name": "Ada"}),
        run(stack, g, input={"name": "Ada Augusta King, Countess of Lovelace"}),
        run(stack, g, input={"name": "Ada"}),
    )
    ra, rb, rs = a["run_id"], b["run_id"], same["run_id"]

    r = await stack.http.get("/v1/runs/compare", params={"a": ra, "b": rb})
    assert r.status_code == 200, r.text
    c = r.json()
    assert (c["a"]["run_id"], c["b"]["run_id"]) == (ra, rb)
    assert c["a"]["status"] == c["b"]["status"] == "completed" and c["same_version"]
    assert c["delta"]["tokens"] == c["b"]["tokens"] - c["a"]["tokens"] > 0
    assert c["a"]["step_count"] == c["b"]["step_count"] == 1 and c["delta"]["step_count"] == 0
    (hello,) = c["steps"]
    assert hello["step_id"] == "hello" and hello["output_changed"] is True
    assert hello["tokens"] > 0 and not hello["status_changed"]
    assert isinstance(hello["duration_ms"], int) and not c["notes"]

    r = await stack.http.get("/v1/runs/compare", params={"a": ra, "b": rs})
    assert r.json()["steps"][0]["output_changed"] is False

    going = (await stack.start(slow))["run_id"]

    async def napping() -> dict[str, Any] | None:
        r = await stack.http.get("/v1/runs/compare", params={"a": ra, "b": going})
        assert r.status_code == 200, r.text
        body = r.json()
        return body if body["b"]["status"] == "running" and body["b"]["step_count"] == 2 else None

    c = await eventually(napping)
    assert c["b"]["partial"] and any("still running" in n for n in c["notes"])
    assert any("different definitions" in n for n in c["notes"])
    steps = {s["step_id"]: s for s in c["steps"]}
    assert steps["nap"]["a"] is None and steps["nap"]["output_changed"] is None
    assert steps["nap"]["b"]["status"] == "running"

    missing = f"run-nope-{sfx}"
    r = await stack.http.get("/v1/runs/compare", params={"a": ra, "b": missing})
    assert r.status_code == 404 and missing in r.json()["detail"]
    # `compare` is this route, never taken for a run id by `/v1/runs/{run_id}`
    r = await stack.http.get("/v1/runs/compare")
    assert r.status_code == 422 and "run 'compare'" not in r.text
    assert (
        "compare"
        in (await stack.http.get("/openapi.json")).json()["paths"]["/v1/runs/compare"]["get"][
            "operationId"
        ]
    )

    out = await asyncio.to_thread(cli, stack, "run", "compare", ra, rb)
    assert out.returncode == 0, out.stderr
    assert "hello" in out.stdout and "changed" in out.stdout and "tokens" in out.stdout
    out = await asyncio.to_thread(cli, stack, "run", "compare", ra, missing)
    assert out.returncode == 2 and missing in out.stderr
    await stack.http.post(f"/v1/runs/{going}/cancel", json={"reason": "test over"})


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback endpoint recording the JSON bodies posted to it."""
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve_asgi(app) as url:
        yield f"{url}/hook", received


async def test_health_turns_to_regression_on_tokens_and_failures(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    async with (
        webhook_receiver() as (url, received),
        run_stack(dev_env, task_queue, tmp_path, notify_webhook_url=url) as stack,
    ):
        await check_health(stack, received)


async def check_health(stack: Stack, received: list[dict[str, Any]]) -> None:
    sfx = uuid.uuid4().hex[:6]
    did, calm = f"digest-{sfx}", f"calm-{sfx}"
    await stack.put_definition(
        {
            "id": did,
            "inputs": {
                "text": {"type": "string", "default": "a b"},
                "fail": {"type": "boolean", "default": False},
            },
            "steps": [
                {
                    "id": "check",
                    "action": "conditional",
                    "condition": "input.fail",
                    "then": "boom",
                    "else": "say",
                },
                {"id": "say", "action": "llm_call", "prompt": "{{ input.text }}", "next": "end"},
                {"id": "boom", "action": "llm_call", "prompt": "x", "model": BOOM},
            ],
            # latency depends on the machine's load (the long-text runs of a busy machine
            # read as a latency regression too): only tokens and failures decide here
            "regression": {
                "recent": 2,
                "window": 3,
                "tokens_pct": 100,
                "consecutive_failures": 2,
                "min_latency_ms": 3_600_000,
            },
        }
    )
    await stack.put_definition(greet(calm))

    async def health(d: str) -> dict[str, Any]:
        r = await stack.http.get(f"/v1/definitions/{d}/health")
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    async def batch(n: int, **inp: Any) -> None:
        done = await asyncio.gather(*(run(stack, did, input=inp) for _ in range(n)))
        assert all(r["done"] for r in done)

    await batch(3)
    h = await health(did)
    assert h["status"] == "healthy" and "not enough history" in h["notes"][0]
    assert h["thresholds"]["recent"] == 2 and h["thresholds"]["tokens_pct"] == 100
    await batch(2)

    async def baseline_seen() -> dict[str, Any] | None:
        h = await health(did)
        return h if h["baseline_runs"] == 3 and len(h["recent_runs"]) == 2 else None

    h = await eventually(baseline_seen)
    assert h["status"] == "healthy" and h["reasons"] == [], h

    long_text = " ".join(["word"] * 40)  # ~20x the tokens of "a b"
    await batch(2, text=long_text)

    async def regressed() -> dict[str, Any] | None:
        h = await health(did)
        return h if h["status"] == "regression" else None

    with structlog.testing.capture_logs() as logs:
        h = await eventually(regressed)
    assert any(e["event"] == "regression detected" and e["definition"] == did for e in logs)
    (reason,) = h["reasons"]
    assert reason["metric"] == "tokens" and reason["level"] == "regression"
    assert reason["recent"] > reason["baseline"] * 2 and reason["threshold"] == 100
    assert "tokens median" in reason["message"]

    r = await stack.http.get("/v1/health/regressions")
    assert r.status_code == 200, r.text
    listed = {item["definition_id"]: item for item in r.json()["items"]}
    assert listed[did]["status"] == "regression" and calm not in listed

    await batch(1, fail=True)

    async def failures(n: int) -> dict[str, Any] | None:
        h = await health(did)
        return h if h["consecutive_failures"] == n else None

    h = await eventually(lambda: failures(1))
    assert {(x["metric"], x["level"]) for x in h["reasons"]} == {
        ("tokens", "regression"), ("consecutive_failures", "warning")}  # fmt: skip
    await batch(1, fail=True)
    h = await eventually(lambda: failures(2))
    fail = next(x for x in h["reasons"] if x["metric"] == "consecutive_failures")
    assert fail["level"] == "regression" and fail["recent"] == 2 and h["last_status"] == "failed"

    out = await asyncio.to_thread(cli, stack, "def", "health", did)
    assert out.returncode == 0, out.stderr
    assert "regression" in out.stdout and "consecutive_failures" in out.stdout

    # one alert, on the turn to `regression`; later reads that still find it post none
    alerts = [b for b in received if b["data"]["definition_id"] == did]
    assert len(alerts) == 1 and alerts[0]["channel"] == "regressions", received
    assert alerts[0]["data"]["previous"] == "healthy"
    assert alerts[0]["data"]["reasons"][0]["metric"] == "tokens"
    assert f"regression detected in {did}" in alerts[0]["message"]

    r = await stack.http.get(f"/v1/definitions/nope-{sfx}/health")
    assert r.status_code == 404 and f"nope-{sfx}" in r.json()["detail"]


def priced_steps(n: int) -> list[dict[str, Any]]:
    model = {"provider": "openai", "name": "text"}
    return [{"id": f"ask{i}", "action": "llm_call", "prompt": "hi", "model": model}
            for i in range(n)]  # fmt: skip


async def test_cost_regression_after_a_new_version_calls_the_model_twice(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    """Real cost: an OpenAI-compatible server (1000 + 500 tokens a call) and a price table;
    version 2 of the definition makes two calls, so its runs cost twice as much."""
    sfx = uuid.uuid4().hex[:6]
    did = f"pricey-{sfx}"
    async with serve_fake_llm() as fake:
        openai = OpenAISettings(api_key=SecretStr("sk-test"), base_url=f"{fake.url}/v1")
        async with run_stack(dev_env, task_queue, tmp_path, openai=openai,
                             prices={"text": (1.0, 2.0)}) as stack:  # fmt: skip
            body = {"id": did, "steps": priced_steps(1),
                    "regression": {"recent": 1, "window": 2, "cost_pct": 50}}  # fmt: skip
            await stack.put_definition(body)
            v1 = await asyncio.gather(*(run(stack, did) for _ in range(2)))
            assert {r["state"]["usage"]["cost_usd"] for r in v1} == {0.002}
            await stack.put_definition({**body, "steps": priced_steps(2)})
            v2 = await run(stack, did)
            assert v2["state"]["definition_version"] == 2

            async def regressed() -> dict[str, Any] | None:
                r = await stack.http.get(f"/v1/definitions/{did}/health")
                h = r.json()
                return h if h["status"] == "regression" else None

            h = await eventually(regressed)
            reasons = {x["metric"]: x for x in h["reasons"]}
            cost = reasons["cost_usd"]
            assert (cost["baseline"], cost["recent"], cost["change_pct"]) == (0.002, 0.004, 100.0)
            assert reasons["tokens"]["change_pct"] == 100.0  # default threshold 50%

            s = await stats(stack, definition_id=did)
            assert s["cost_usd"]["total"] == 0.008 and s["tokens"]["total"] == 6000

            r = await stack.http.get("/v1/runs/compare",
                                     params={"a": v1[0]["run_id"], "b": v2["run_id"]})  # fmt: skip
            c = r.json()
            assert c["delta"]["cost_usd"] == 0.002 and c["delta"]["cost_pct"] == 100.0
            assert c["delta"]["step_count"] == 1 and not c["same_version"]
            assert any("different versions" in n for n in c["notes"])
            ask1 = next(x for x in c["steps"] if x["step_id"] == "ask1")
            assert ask1["a"] is None and ask1["b"]["cost_usd"] == 0.002


def scripted(delay: float) -> dict[str, Any]:
    model = {"provider": "scripted", "name": "script", "script": [{"text": "ok", "delay": delay}]}
    return {"id": "think", "action": "llm_call", "prompt": "go", "model": model}


async def test_latency_regression_after_a_slower_version(stack: Stack) -> None:
    """Version 2's model answers a second later (a scripted `delay`): the duration median
    doubles and more, past the definition's 100%; compare shows the step's extra second."""
    did = f"sluggish-{uuid.uuid4().hex[:6]}"
    body = {"id": did, "steps": [scripted(0.0)],
            "regression": {"recent": 1, "window": 2, "latency_pct": 100, "min_latency_ms": 300}}  # fmt: skip
    await stack.put_definition(body)
    fast = await asyncio.gather(run(stack, did), run(stack, did))
    await stack.put_definition({**body, "steps": [scripted(1.0)]})
    slow = await run(stack, did)
    assert slow["state"]["duration_ms"] >= 1000

    async def regressed() -> dict[str, Any] | None:
        h = (await stack.http.get(f"/v1/definitions/{did}/health")).json()
        return h if h["status"] == "regression" else None

    h = await eventually(regressed)
    (reason,) = h["reasons"]
    assert reason["metric"] == "duration_ms" and reason["recent"] >= 1000
    assert reason["recent"] - reason["baseline"] >= 900 and reason["change_pct"] >= 100

    r = await stack.http.get(
        "/v1/runs/compare", params={"a": fast[0]["run_id"], "b": slow["run_id"]}
    )
    c = r.json()
    assert c["delta"]["duration_ms"] >= 900 and c["delta"]["duration_pct"] >= 100
    (think,) = c["steps"]
    assert think["duration_ms"] >= 900 and think["output_changed"] is False
