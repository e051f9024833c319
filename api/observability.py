"""What the gateway tells an operator: one JSON log line and request metrics per request,
its own gauges at `/metrics`, and (when tracing is on) a server span per request.

Request metrics are labelled by route *template* (`/v1/runs/{run_id}`), never by the
path itself, so a million runs make one series, not a million. The metrics live in a
registry per app (two gateways in one test process do not add up). Runs finished,
tokens and cost are observed in the worker, where they happen (worker/run_metrics.py).

Code that learns something a request's log line should carry (the run a `POST
/v1/runs` started) calls `note(run_id=...)`.
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from duratask.logging import get_logger
from duratask.settings import Settings
from duratask.telemetry import current_trace_id, setup_tracing
from workflows import contracts
from workflows.models import RunStatus

log = get_logger("duratask.request")

_fields: ContextVar[dict[str, Any] | None] = ContextVar("duratask_request_fields", default=None)

QUIET_ROUTES = {"/metrics", "/healthz", "/readyz"}  # logged at debug: probes and scrapes


def note(**fields: Any) -> None:
    """Add fields to the current request's log line (no-op outside a request)."""
    current = _fields.get()
    if current is not None:
        current.update(fields)


class GatewayMetrics:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "duratask_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "duratask_http_request_duration_seconds",
            "time to answer (for SSE: the stream's life), by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.sse_clients = Gauge(
            "duratask_sse_clients", "SSE clients following a run", registry=self.registry
        )
        self.sse_clients.set_function(self._sse_clients)
        self.run_subscriptions = Gauge(
            "duratask_event_subscriptions",
            "runs whose event stream this gateway follows (one per run, shared by its clients)",
            registry=self.registry,
        )
        self.run_subscriptions.set_function(self._feeds)
        self.approvals_waiting = Gauge(
            "duratask_approvals_waiting",
            "runs waiting for an approval on this gateway's task queue (read at scrape)",
            registry=self.registry,
        )

    def _hub_feeds(self) -> list[Any]:
        hub = getattr(self.app.state, "stream_hub", None)
        return list(getattr(hub, "feeds", {}).values()) if hub is not None else []

    def _sse_clients(self) -> float:
        return float(sum(getattr(f, "clients", 0) for f in self._hub_feeds()))

    def _feeds(self) -> float:
        return float(len(self._hub_feeds()))

    async def refresh(self) -> None:
        """Gauges that need a Temporal read: done at scrape, bounded, skipped when down."""
        client = getattr(self.app.state, "temporal", None)
        if client is None:
            return
        settings: Settings = self.app.state.settings
        query = (
            f'{contracts.SA_STATUS.name}="{RunStatus.awaiting_approval.value}" '
            f'AND ExecutionStatus="Running" AND TaskQueue="{settings.task_queue}"'
        )
        try:
            count = await asyncio.wait_for(client.count_workflows(query), 3)
        except Exception as e:  # the scrape still answers; the gauge keeps its last value
            log.warning("approvals gauge not refreshed", error=str(e))
            return
        self.approvals_waiting.set(count.count)


class RequestObserver:
    """Pure ASGI middleware (works for streaming answers): metrics and the log line."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        fields: dict[str, Any] = {}
        token = _fields.set(fields)
        trace_id = current_trace_id()

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            _fields.reset(token)
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"]
            if self.metrics is not None:
                labels = (method, route, str(status))
                self.metrics.requests.labels(*labels).inc()
                self.metrics.latency.labels(*labels).observe(elapsed)
            run_id = (scope.get("path_params") or {}).get("run_id") or fields.pop("run_id", None)
            params = scope.get("path_params") or {}  # /codec/ui/<secret>, /v1/links/<token>
            secret_path = "secret" in params or "token" in params
            line: dict[str, Any] = {
                "method": method,
                "path": route if secret_path else scope["path"],
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
                **fields,
            }
            if run_id:
                line["run_id"] = run_id
            if trace_id:
                line["trace_id"] = trace_id
            if route in QUIET_ROUTES:
                log.debug("request", **line)
            else:
                log.info("request", **line)


def install(app: FastAPI, settings: Settings) -> None:
    """Metrics registry, the request observer and (when on) the tracing middleware."""
    metrics = GatewayMetrics(app) if settings.gateway_metrics else None
    app.state.metrics = metrics
    app.add_middleware(RequestObserver, metrics=metrics)  # type: ignore[arg-type]
    if setup_tracing(settings):
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        # outermost, so the request's span is current in the observer and every handler
        # a delivered link's URL is its credential: never a span attribute
        FastAPIInstrumentor.instrument_app(
            app, excluded_urls="/metrics,/healthz,/readyz,/v1/links/"
        )
