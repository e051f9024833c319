"""Traces leave the process only for an OTLP endpoint named in settings: a child process
with `otlp_endpoint` set ships its spans over real HTTP (OTLP/protobuf) to a receiver
here; with default settings nothing is installed, so nothing can be exported."""

from __future__ import annotations

import asyncio
import sys
import textwrap

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from duratask.settings import Settings
from duratask.telemetry import client_interceptors, tracing_on
from tests.stack import serve_asgi

CHILD = textwrap.dedent(
    """
    import sys
    from opentelemetry import trace
    from duratask.settings import Settings
    from duratask.telemetry import client_interceptors

    settings = Settings(otlp_endpoint=sys.argv[1], service_name="otlp-probe", _env_file=None)
    assert [type(i).__name__ for i in client_interceptors(settings)] == ["TracingInterceptor"]
    with trace.get_tracer("probe").start_as_current_span("probe-span"):
        pass
    trace.get_tracer_provider().force_flush()
    """
)


async def test_spans_are_exported_to_the_configured_otlp_endpoint() -> None:
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: Request) -> Response:
        received.append(ExportTraceServiceRequest.FromString(await request.body()))
        return Response(b"", media_type="application/x-protobuf")

    app = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    async with serve_asgi(app) as url:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CHILD, f"{url}/v1/traces")
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    spans = [
        (rs.resource, span.name)
        for req in received
        for rs in req.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    assert [name for _, name in spans] == ["probe-span"]
    resource = spans[0][0]
    service = {a.key: a.value.string_value for a in resource.attributes}["service.name"]
    assert service == "otlp-probe"


def test_nothing_is_traced_or_exported_by_default() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert not tracing_on(settings)
    assert client_interceptors(settings) == []
