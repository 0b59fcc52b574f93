"""One HTTP request is one trace: the gateway's server span (a child of the caller's `traceparent`)
parents the rate limit and the gRPC call, inference's spans hang under that call, the outbox
relay's publish of the request's events hangs under their commit, and the access-log line
carries the trace id."""

from __future__ import annotations

import json
import logging
import secrets

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from dreamforge.logging import JsonFormatter
from dreamforge.tracing import configure_tracing
from tests.gateway.conftest import Stack
from tests.gateway.images import PNG
from tests.helpers import eventually


class FormatNow(logging.Handler):
    """Formats each record as it is emitted, i.e. inside the span that was current then."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, object]] = []
        self.formatter_ = JsonFormatter("gateway")

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.formatter_.format(record)))


async def test_an_http_request_is_one_trace_from_the_callers_span_to_inference(stack: Stack) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("gateway-test", exporter=exporter)
    access, access_log = FormatNow(), logging.getLogger("dreamforge.gateway.access")
    level = access_log.level
    access_log.addHandler(access)
    access_log.setLevel(logging.INFO)
    account = await stack.account()
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    try:
        async with stack.client(account) as client:
            reply = await client.post("/v1/query", json={"image_url": PNG, "question": "what colour is it?"},
                                      headers={"traceparent": f"00-{trace_id}-{caller_span}-01"})
        assert reply.status_code == 200, reply.text

        def trace_spans() -> list[ReadableSpan] | None:
            spans = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
            names = [s.name for s in spans]
            published = sum(name.endswith(" publish") for name in names)
            return spans if "POST /v1/query" in names and published == 2 else None

        spans = await eventually(trace_spans)
    finally:
        access_log.removeHandler(access)
        access_log.setLevel(level)

    def one(name: str, kind: SpanKind | None = None) -> ReadableSpan:
        found = [s for s in spans if s.name.endswith(name) and (kind is None or s.kind == kind)]
        assert len(found) == 1, [(s.name, s.kind) for s in spans]
        return found[0]

    def parent_of(span: ReadableSpan) -> int:
        assert span.parent is not None, span.name
        return span.parent.span_id

    http = one("POST /v1/query", SpanKind.SERVER)
    assert parent_of(http) == int(caller_span, 16) and http.parent is not None and http.parent.is_remote
    assert http.attributes is not None
    assert http.attributes["http.response.status_code"] == 200
    assert http.attributes["http.route"] == "/v1/query"
    assert http.attributes["dreamforge.request_id"] == reply.headers["x-request-id"]
    assert http.attributes["dreamforge.tenant_id"] == account.tenant_id

    rate_limit = one("gateway.rate_limit")
    call = one("InferenceService/Query", SpanKind.CLIENT)
    served = one("InferenceService/Query", SpanKind.SERVER)
    assert parent_of(rate_limit) == parent_of(call) == http.context.span_id
    assert parent_of(served) == call.context.span_id
    generate, record = one("inference.generate"), one("inference.record")
    assert parent_of(generate) == parent_of(record) == served.context.span_id
    model = one("model.generate")  # on the runtime's generating thread
    assert parent_of(model) == generate.context.span_id
    assert model.attributes is not None and model.attributes["model.batch_size"] == 1
    publishes = [s for s in spans if s.kind == SpanKind.PRODUCER]
    assert sorted(s.name.split(".")[2] for s in publishes) == ["inference", "usage"]  # completed, recorded
    assert all(parent_of(s) == record.context.span_id for s in publishes)
    assert http.start_time is not None and http.end_time is not None
    assert http.start_time <= call.start_time and call.end_time is not None and call.end_time <= http.end_time

    logged = [line for line in access.lines if line.get("request_id") == reply.headers["x-request-id"]]
    assert len(logged) == 1 and logged[0]["trace_id"] == trace_id, access.lines
