"""Tracing and the worker's Prometheus runtime, shared by worker, gateway and CLI.

One trace follows a run from `POST /v1/runs` (FastAPI instrumentation) through the
Temporal client and worker (`TracingInterceptor`, which carries the context in
Temporal headers) to the model provider's HTTP call (httpx and httpx2 instrumentation). Spans are
made only when tracing is on, and exported only to an OTLP endpoint named in settings:
by default nothing is exported and the instrumentation is not even installed.

Log lines get the current trace and span ids (`add_trace_ids`), so a JSON log line
leads to its trace.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from functools import cache
from typing import Any

from opentelemetry import trace
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from duratask.settings import Settings


def tracing_on(settings: Settings) -> bool:
    return settings.tracing or bool(settings.otlp_endpoint)


_installed: dict[str, bool] = {}


def setup_tracing(settings: Settings) -> bool:
    """Install the tracer provider (OTLP when an endpoint is set) and the httpx
    instrumentation, once per process; returns whether tracing is on."""
    if not tracing_on(settings):
        return False
    if settings.otlp_endpoint and not _installed.get("provider"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otlp_endpoint)))
        trace.set_tracer_provider(provider)
        _installed["provider"] = True
    if not _installed.get("httpx"):
        # both: the model SDKs (openai, anthropic) use httpx2, the rest of duratask httpx
        from opentelemetry.instrumentation.httpx import (
            HTTPX2ClientInstrumentor,
            HTTPXClientInstrumentor,
        )

        HTTPXClientInstrumentor().instrument()
        HTTPX2ClientInstrumentor().instrument()
        _installed["httpx"] = True
    return True


def client_interceptors(settings: Settings) -> list[Any]:
    """The Temporal client interceptors (they apply to workers built on the client too)."""
    if not setup_tracing(settings):
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]


@cache
def prometheus_runtime(bind_address: str) -> Runtime:
    """A Temporal runtime serving the SDK's metrics (and duratask's worker metrics, made
    through the SDK's metric meter) for Prometheus at http://<bind_address>/metrics.
    One per address per process: the SDK's core binds the port once."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind_address, counters_total_suffix=True, durations_as_seconds=True
            )
        )
    )


def runtime_for(settings: Settings) -> Runtime | None:
    if not settings.worker_metrics_address:
        return None
    return prometheus_runtime(settings.worker_metrics_address)


def current_trace_id() -> str | None:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: the current span's trace and span ids, when there is one."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    return event
