"""Traces and metrics from a real run on the dev server, with the fake OpenAI server as
the model endpoint (so the model call is a real HTTP request through httpx).

- One trace holds the gateway's `POST /v1/runs`, the workflow, its model activity and
  the activity's HTTP call to the model server (read from an in-memory span exporter).
- The worker's Prometheus endpoint (the SDK's runtime metrics plus duratask's runs,
  tokens and cost) and the gateway's `/metrics` (requests by route template, approvals
  waiting, SSE clients) show the right values after a run.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from duratask.settings import OpenAISettings
from duratask.telemetry import prometheus_runtime
from tests.fakes.openai_server import FakeLlmServer, serve_fake_llm
from tests.helpers import eventually
from tests.stack import Stack, free_port, run_gateway, stack_settings
from worker.client import connect
from worker.main import build_worker

DEFINITION = {
    "id": "observed",
    "inputs": {"topic": {"type": "string", "required": True}},
    "model": {"provider": "openai", "name": "text"},
    "steps": [{"id": "ask", "action": "llm_call", "prompt": "Tell me about {{ input.topic }}"}],
}


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """An in-memory exporter on the process's tracer provider (set once per process)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
async def fake() -> AsyncIterator[FakeLlmServer]:
    async with serve_fake_llm() as f:
        yield f


@contextlib.asynccontextmanager
async def observed_stack(
    env: WorkflowEnvironment, task_queue: str, tmp: Path, fake: FakeLlmServer, **kw: Any
) -> AsyncIterator[Stack]:
    settings = stack_settings(
        env,
        task_queue,
        tmp,
        openai=OpenAISettings(api_key=SecretStr("sk-test-obs"), base_url=f"{fake.url}/v1"),
        prices={"text": (1.0, 2.0)},  # USD per million tokens: 1000 in + 500 out = 0.002
        **kw,
    )
    runtime = (
        prometheus_runtime(settings.worker_metrics_address)
        if settings.worker_metrics_address
        else None
    )
    client = await connect(settings, runtime=runtime)
    async with (
        build_worker(client, settings, task_queue),
        run_gateway(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        stack = Stack(url, http, client, settings, task_queue)
        await stack.put_definition(DEFINITION)
        yield stack


def _hex(trace_id: int) -> str:
    return format(trace_id, "032x")


async def test_one_trace_from_post_runs_to_the_model_http_call(
    dev_env: WorkflowEnvironment,
    task_queue: str,
    tmp_path: Path,
    fake: FakeLlmServer,
    spans: InMemorySpanExporter,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spans.clear()
    async with observed_stack(dev_env, task_queue, tmp_path, fake, tracing=True) as s:
        run = await s.start("observed", input={"topic": "otters"})
        done = await s.wait_result(run["run_id"])
        assert done["status"] == "completed", done

    def the_trace() -> list[ReadableSpan]:
        finished = spans.get_finished_spans()
        roots = [
            sp
            for sp in finished
            if sp.name == "POST /v1/runs" and sp.kind == trace.SpanKind.SERVER and sp.context
        ]
        assert len(roots) == 1, [sp.name for sp in finished]
        trace_id = roots[0].context.trace_id  # type: ignore[union-attr]
        return [sp for sp in finished if sp.context and sp.context.trace_id == trace_id]

    async def complete() -> list[ReadableSpan]:
        found = the_trace()
        names = {sp.name for sp in found}
        assert "RunActivity:duratask.llm.complete" in names, names
        return found

    in_trace = await eventually(complete, timeout=30)
    names = [sp.name for sp in in_trace]
    for expected in (
        "POST /v1/runs",  # the gateway (FastAPI instrumentation)
        "StartWorkflow:TaskRunWorkflow",  # the gateway's Temporal client
        "RunWorkflow:TaskRunWorkflow",  # the worker, through Temporal's headers
        "StartActivity:duratask.llm.complete",
        "RunActivity:duratask.llm.complete",
    ):
        assert expected in names, names
    model_calls = [
        sp
        for sp in in_trace
        if sp.kind == trace.SpanKind.CLIENT
        and "/v1/chat/completions"
        in str(sp.attributes.get("url.full") or sp.attributes.get("http.url"))
    ]
    assert len(model_calls) == 1, [
        (sp.name, sp.context and _hex(sp.context.trace_id), dict(sp.attributes or {}))
        for sp in spans.get_finished_spans()
    ]
    # the model call is a child of the activity's span
    activity = next(sp for sp in in_trace if sp.name == "RunActivity:duratask.llm.complete")
    parents = {sp.context.span_id: sp for sp in in_trace if sp.context}
    node: ReadableSpan | None = model_calls[0]
    chain = []
    while node is not None and node.parent is not None:
        node = parents.get(node.parent.span_id)
        chain.append(node.name if node else None)
    assert activity.name in chain, chain

    # the request's log line carries the run id and the trace id (key=value or JSON)
    logged = capsys.readouterr()
    trace_hex = _hex(in_trace[0].context.trace_id)  # type: ignore[union-attr]
    lines = [
        line
        for line in (logged.out + logged.err).splitlines()
        if "request" in line and "201" in line and run["run_id"] in line and "POST" in line
    ]
    assert len(lines) == 1, lines
    assert trace_hex in lines[0]


def scrape(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(
    samples: dict[Any, float], name: str, default: float | None = None, **labels: str
) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    want = set(labels.items())
    hits = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    if not hits and default is not None:
        return default
    assert hits, f"no {name}{labels} in {sorted({n for n, _ in samples})}"
    return sum(hits)


async def test_metrics_on_the_worker_and_the_gateway_after_a_run(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path, fake: FakeLlmServer
) -> None:
    address = f"127.0.0.1:{free_port()}"
    async with observed_stack(
        dev_env, task_queue, tmp_path, fake, worker_metrics_address=address
    ) as s:
        run = await s.start("observed", input={"topic": "otters"})
        assert (await s.wait_result(run["run_id"]))["status"] == "completed"
        await s.put_definition(
            {
                "id": "gated",
                "steps": [{"id": "ok", "action": "approval", "approvers": ["boss@example.com"]}],
            }
        )
        gated = await s.start("gated")

        async def waiting() -> bool:
            r = await s.http.get(f"/v1/runs/{gated['run_id']}")
            return bool(r.json()["status"] == "awaiting_approval")

        await eventually(waiting, timeout=30)

        # an SSE client follows the gated run while we scrape
        async with s.http.stream("GET", f"/v1/runs/{gated['run_id']}/events") as sse:
            assert sse.status_code == 200
            lines = sse.aiter_lines()
            await anext(lines)  # the first event has arrived: the client is attached

            async def gateway_view() -> dict[Any, float] | None:
                got = scrape((await s.http.get("/metrics")).text)
                return got if value(got, "duratask_approvals_waiting") == 1 else None

            gw = await eventually(gateway_view, timeout=30)
        assert value(gw, "duratask_sse_clients") == 1
        assert value(gw, "duratask_event_subscriptions") == 1
        assert (
            value(gw, "duratask_http_requests_total", method="POST", route="/v1/runs", status="201")
            == 2
        )
        assert (
            value(
                gw,
                "duratask_http_request_duration_seconds_count",
                method="GET",
                route="/v1/runs/{run_id}/result",
                status="200",
            )
            == 1
        )
        # templates, never raw paths: no label holds a run id
        assert run["run_id"] not in json.dumps(sorted(str(k) for k in gw))
        after = scrape((await s.http.get("/metrics")).text)
        assert value(after, "duratask_sse_clients") == 0
        await s.http.post(f"/v1/runs/{gated['run_id']}/cancel", json={"reason": "test over"})

        async def worker_view() -> dict[Any, float] | None:
            async with httpx.AsyncClient() as http:
                got = scrape((await http.get(f"http://{address}/metrics")).text)
            done = value(got, "duratask_runs_finished_total", default=0, definition="gated")
            return got if done == 1 else None

        wk = await eventually(worker_view, timeout=30)
    started = "duratask_runs_started_total"
    assert value(wk, started, definition="observed", trigger="api") == 1
    assert value(wk, started, definition="gated", trigger="api") == 1
    finished = "duratask_runs_finished_total"
    assert value(wk, finished, definition="observed", status="completed") == 1
    assert value(wk, finished, definition="gated", status="cancelled") == 1
    assert value(wk, "duratask_model_tokens_total", model="text", kind="input") == 1000
    assert value(wk, "duratask_model_tokens_total", model="text", kind="output") == 500
    assert value(wk, "duratask_model_cost_usd_sum", model="text") == pytest.approx(0.002)
    assert value(wk, "duratask_model_cost_usd_count", model="text") == 1
    # and the SDK's own runtime metrics, on the same endpoint
    assert value(wk, "temporal_workflow_completed_total", task_queue=task_queue) >= 1
    assert value(wk, "temporal_activity_execution_latency_count") >= 1

    # the Grafana dashboard queries only series these two endpoints really expose
    scraped = {name for name, _ in gw} | {name for name, _ in wk}
    assert dashboard_series() <= scraped, dashboard_series() - scraped


DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "duratask.json"


def dashboard_series() -> set[str]:
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert exprs
    return {m for e in exprs for m in re.findall(r"\b(?:duratask|temporal)_[a-z_]+", e)}


async def test_metrics_off_is_404(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    settings = stack_settings(dev_env, task_queue, tmp_path, gateway_metrics=False)
    async with run_gateway(settings) as url, httpx.AsyncClient(base_url=url) as http:
        r = await http.get("/metrics")
        assert r.status_code == 404 and "DURATASK_GATEWAY_METRICS" in r.json()["detail"]
