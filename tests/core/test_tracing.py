"""Spans without an exporter: ids made and propagated, nothing recorded; recorded once something exports."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dreamforge.tracing import RecordWhenExported, inject_headers


def test_spans_carry_ids_but_are_recorded_only_once_something_exports() -> None:
    sampler = RecordWhenExported()
    provider = TracerProvider(sampler=sampler)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    with tracer.start_as_current_span("before any exporter") as span:
        context = span.get_span_context()
        assert context.is_valid and not span.is_recording()
        with tracer.start_as_current_span("child") as child:
            assert child.get_span_context().trace_id == context.trace_id
            traceparent = inject_headers({})["traceparent"]
    assert traceparent.split("-")[1] == format(context.trace_id, "032x")
    assert exporter.get_finished_spans() == ()

    sampler.exporting = True
    with tracer.start_as_current_span("exported") as span:
        assert span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["exported"]
