"""OpenTelemetry set-up and the two hops it must cross: gRPC calls and NATS messages.

gRPC is covered by the official interceptors (`server_interceptors`,
`client_interceptors`). NATS has no instrumentation, so the event bus calls
`inject_headers` when it publishes and `extract_context` when it consumes: the W3C
`traceparent` travels in the message headers and a consumer's span is a child of
the producer's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation.grpc import aio_client_interceptors, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, DEFAULT_ON, Sampler, SamplingResult

_configured_exporters: list[SpanExporter] = []


class RecordWhenExported(Sampler):
    """The SDK's default (parent-based, always on) once something exports spans; until then, drop.

    A dropped span still gets ids and propagates them (logs carry the trace id, `traceparent`
    travels in gRPC metadata and NATS headers), but nothing is recorded: with no exporter,
    recording every span of every request and event cost CPU time that nothing ever read."""

    def __init__(self) -> None:
        self.exporting = False

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                      attributes: Any = None, links: Any = None, trace_state: Any = None) -> SamplingResult:
        sampler = DEFAULT_ON if self.exporting else ALWAYS_OFF
        return sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "RecordWhenExported"


class JsonLinesSpanExporter(SpanExporter):
    """Appends each finished span to a file as one JSON line, for looking at traces without a collector.

    Every process of a platform may append to the same file: each batch is one `write` to a file
    opened with O_APPEND, so lines never interleave. Times are epoch nanoseconds (one clock for all
    processes of a machine), ids lower-case hex as in `traceparent`."""

    def __init__(self, path: str | Path, service: str) -> None:
        self.service = service
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._fd is None:
            return SpanExportResult.FAILURE
        lines = [json.dumps(span_record(span, self.service), default=str) + "\n" for span in spans]
        if lines:
            os.write(self._fd, "".join(lines).encode())
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def span_record(span: ReadableSpan, service: str) -> dict[str, Any]:
    """What `JsonLinesSpanExporter` writes for one span."""
    context, parent = span.context, span.parent
    return {"service": service, "name": span.name, "kind": span.kind.name.lower(),
            "trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x"),
            "parent_id": format(parent.span_id, "016x") if parent else "",
            "start_ns": span.start_time, "end_ns": span.end_time,
            "status": span.status.status_code.name.lower(), "attributes": dict(span.attributes or {})}


def configure_tracing(
    service: str, otlp_endpoint: str = "", exporter: SpanExporter | None = None, trace_file: str = ""
) -> TracerProvider:
    """Install the global tracer provider once per process.

    `otlp_endpoint` exports to a collector; `trace_file` appends spans to a local JSON-lines
    file (`JsonLinesSpanExporter`); `exporter` (e.g. an InMemorySpanExporter in tests) is added
    as well. Without any of them, spans still carry ids (into logs and headers) but are not
    recorded (`RecordWhenExported`); `OTEL_TRACES_SAMPLER` in the environment overrides that
    choice, as the SDK documents.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        sampler = None if os.environ.get("OTEL_TRACES_SAMPLER") else RecordWhenExported()
        provider = TracerProvider(resource=Resource.create({"service.name": f"dreamforge-{service}"}),
                                  sampler=sampler)
        trace.set_tracer_provider(provider)
    if (otlp_endpoint or trace_file or exporter is not None) and isinstance(provider.sampler, RecordWhenExported):
        provider.sampler.exporting = True
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    if trace_file:
        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(trace_file, service)))
    if exporter is not None and exporter not in _configured_exporters:
        _configured_exporters.append(exporter)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """Write the current trace context (traceparent, tracestate) into message headers."""
    propagate.inject(headers)
    return headers


def extract_context(headers: Mapping[str, str] | None) -> context.Context:
    """The trace context a producer put in message headers (empty context if none)."""
    return propagate.extract(dict(headers or {}))


def server_interceptors() -> Sequence[Any]:
    return [aio_server_interceptor()]


def client_interceptors() -> Sequence[Any]:
    return list(aio_client_interceptors())
