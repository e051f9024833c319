"""The gateway's per-request log line: one JSON object with the route template, status,
run id (from the path, or noted by the code that started a run) and no path secret."""

from __future__ import annotations

import json

import httpx
import pytest
import structlog
from fastapi import FastAPI

from api.observability import GatewayMetrics, RequestObserver, note
from duratask.logging import configure_logging


def app() -> FastAPI:
    a = FastAPI()

    @a.get("/v1/runs/{run_id}")
    async def get_run(run_id: str) -> dict[str, str]:
        return {"run_id": run_id}

    @a.post("/v1/runs", status_code=201)
    async def start() -> dict[str, str]:
        note(run_id="run-new", definition="hello")
        return {}

    @a.post("/codec/ui/{secret}/decode")
    async def ui(secret: str) -> dict[str, str]:
        return {}

    a.state.stream_hub = None
    a.state.metrics = GatewayMetrics(a)
    a.add_middleware(RequestObserver, metrics=a.state.metrics)  # type: ignore[arg-type]
    return a


async def test_one_json_line_per_request(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        configure_logging("INFO", json=True)
        a = app()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=a), base_url="http://t"
        ) as http:
            assert (await http.get("/v1/runs/run-abc")).status_code == 200
            assert (await http.post("/v1/runs")).status_code == 201
            assert (await http.post("/codec/ui/hush-hush-1234/decode")).status_code == 200
            assert (await http.get("/nowhere")).status_code == 404
        captured = capsys.readouterr()
        lines = [json.loads(x) for x in (captured.out + captured.err).splitlines() if x.strip()]
        requests = [x for x in lines if x.get("event") == "request"]
        assert [(x["route"], x["status"], x.get("run_id")) for x in requests] == [
            ("/v1/runs/{run_id}", 200, "run-abc"),
            ("/v1/runs", 201, "run-new"),
            ("/codec/ui/{secret}/decode", 200, None),
            ("unmatched", 404, None),
        ]
        assert requests[1]["definition"] == "hello"
        assert "hush-hush-1234" not in captured.out + captured.err
        registry = a.state.metrics.registry
        count = "duratask_http_requests_total"
        labels = {"method": "GET", "route": "/v1/runs/{run_id}", "status": "200"}
        assert registry.get_sample_value(count, labels) == 1
        assert (
            registry.get_sample_value(count, {**labels, "route": "unmatched", "status": "404"}) == 1
        )
    finally:
        structlog.reset_defaults()
