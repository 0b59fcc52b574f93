"""Spans without an exporter: ids made and propagated, nothing recorded; recorded once something exports.
The JSON-lines file exporter: one line per span, from every process that appends."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dreamforge.tracing import JsonLinesSpanExporter, RecordWhenExported, extract_context, inject_headers


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


def test_json_lines_exporter_appends_one_parseable_line_per_span_from_every_writer(tmp_path: Path) -> None:
    path = tmp_path / "traces" / "spans.jsonl"
    writers = {name: JsonLinesSpanExporter(path, name) for name in ("gateway", "inference")}
    providers = {}
    for name, exporter in writers.items():
        providers[name] = TracerProvider()
        providers[name].add_span_processor(SimpleSpanProcessor(exporter))
    gateway, inference = (providers[n].get_tracer("test") for n in ("gateway", "inference"))

    with gateway.start_as_current_span("POST /v1/query", attributes={"http.response.status_code": 200}) as root:
        headers = inject_headers({})
        with inference.start_as_current_span("inference.generate", context=extract_context(headers)) as child:
            pass
    for exporter in writers.values():
        exporter.shutdown()

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["service"], r["name"]) for r in lines] == [("inference", "inference.generate"),
                                                          ("gateway", "POST /v1/query")]
    child_line, root_line = lines
    assert root_line["trace_id"] == child_line["trace_id"] == format(root.get_span_context().trace_id, "032x")
    assert child_line["parent_id"] == root_line["span_id"] == format(root.get_span_context().span_id, "016x")
    assert child_line["span_id"] == format(child.get_span_context().span_id, "016x")
    assert root_line["start_ns"] <= child_line["start_ns"] <= child_line["end_ns"] <= root_line["end_ns"]
    assert root_line["attributes"] == {"http.response.status_code": 200} and root_line["kind"] == "internal"
