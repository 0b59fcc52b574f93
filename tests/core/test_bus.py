"""The event bus against a real JetStream server: dedupe, ack-after-commit,
redelivery with back-off, dead-lettering, restart with exactly-once effects, and
trace parentage across a message."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dreamforge.bus import Delivery, EventBus, PermanentError
from dreamforge.db import Database
from dreamforge.events import DLQ_ROOT, USAGE_RECORDED, new_meta, streams
from dreamforge.tracing import configure_tracing, inject_headers
from dreamforge.v1 import events_pb2
from tests.helpers import eventually


def usage(tenant: str = "t1", event_id: str | None = None, images: int = 1) -> events_pb2.UsageRecorded:
    return events_pb2.UsageRecorded(meta=new_meta(tenant, "test", event_id), request_id="r", images=images)


async def make_bus(nats_url: str, service: str = "svc", **kw: object) -> EventBus:
    bus = EventBus(nats_url, service, **kw)  # type: ignore[arg-type]
    await bus.connect()
    return bus


async def test_streams_are_created_idempotently(nats_url: str) -> None:
    first = await make_bus(nats_url)
    second = await make_bus(nats_url)  # a second service connecting must not fail
    names = {s.config.name for s in await first.js.streams_info()}
    assert set(streams()) <= names
    await first.close()
    await second.close()


async def test_duplicate_publish_is_dropped_by_jetstream(nats_url: str) -> None:
    bus = await make_bus(nats_url)
    event = usage(event_id="same-id")
    assert await bus.publish(USAGE_RECORDED, event) is True
    assert await bus.publish(USAGE_RECORDED, event) is False
    info = await bus.js.stream_info(USAGE_RECORDED.stream)
    assert info.state.messages == 1
    await bus.close()


async def test_a_pipelined_publish_keeps_order_reports_duplicates_and_carries_each_events_trace(
        nats_url: str) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("test", exporter=exporter)
    bus = await make_bus(nats_url)
    tenant = "pipelined"
    events = [usage(tenant, f"pipe-{i}", images=i + 1) for i in range(50)]
    roots = []
    messages = []
    for event in events[:3]:  # as the outbox stores them: the context of the request that made the event
        with trace.get_tracer("test").start_as_current_span("request") as root:
            roots.append(root)
            headers = inject_headers({"Nats-Msg-Id": event.meta.event_id})
        messages.append((USAGE_RECORDED.subject(tenant), event.SerializeToString(), headers))
    messages += [(USAGE_RECORDED.subject(tenant), e.SerializeToString(), {"Nats-Msg-Id": e.meta.event_id})
                 for e in events[3:]]
    assert await bus.publish_raw_many(messages) == [True] * 50
    # Again, with one new event at the end: the first 50 are JetStream duplicates, the new one is stored.
    extra = usage(tenant, "pipe-50", images=51)
    again = [(s, d, {"Nats-Msg-Id": h["Nats-Msg-Id"]}) for s, d, h in messages]
    again.append((USAGE_RECORDED.subject(tenant), extra.SerializeToString(), {"Nats-Msg-Id": "pipe-50"}))
    assert await bus.publish_raw_many(again) == [False] * 50 + [True]

    sub = await bus.js.subscribe(USAGE_RECORDED.subject(tenant), ordered_consumer=True)
    stored = [events_pb2.UsageRecorded.FromString((await sub.next_msg(timeout=5)).data).images for _ in range(51)]
    assert stored == list(range(1, 52))  # in the order given
    publish_spans = [s for s in exporter.get_finished_spans() if s.name.endswith("publish")]
    for root in roots:  # each event's publish span is a child of its own request's span
        assert any(s.parent is not None and s.parent.span_id == root.get_span_context().span_id
                   for s in publish_spans)
    await sub.unsubscribe()
    await bus.close()


async def test_consumer_acks_after_handler_and_redelivers_on_failure(nats_url: str) -> None:
    bus = await make_bus(nats_url, backoff_s=(0.05,))
    attempts: list[int] = []

    async def flaky(payload: events_pb2.UsageRecorded, delivery: Delivery) -> None:
        attempts.append(delivery.num_delivered)
        if delivery.num_delivered < 3:
            raise RuntimeError("database briefly down")

    bus.subscribe(USAGE_RECORDED, flaky)
    await bus.start()
    await bus.publish(USAGE_RECORDED, usage())
    await eventually(lambda: attempts == [1, 2, 3])
    await asyncio.sleep(0.3)
    assert attempts == [1, 2, 3]  # acked after success: no fourth delivery
    await bus.close()


async def test_dead_letter_after_max_deliveries_and_for_poison(nats_url: str) -> None:
    bus = await make_bus(nats_url, max_deliveries=2, backoff_s=(0.05,))
    seen: list[str] = []

    async def handler(payload: events_pb2.UsageRecorded, delivery: Delivery) -> None:
        seen.append(delivery.event_id)
        if payload.request_id == "always-fails":
            raise RuntimeError("boom")
        if payload.request_id == "invalid":
            raise PermanentError("tenant unknown")

    bus.subscribe(USAGE_RECORDED, handler, durable="billing-ledger")
    await bus.start()
    nc = await nats.connect(nats_url)
    dlq = await nc.subscribe(f"{DLQ_ROOT}.>")
    bad = usage(event_id="bad")
    bad.request_id = "always-fails"
    invalid = usage(event_id="invalid")
    invalid.request_id = "invalid"
    await bus.publish(USAGE_RECORDED, bad)
    await bus.publish(USAGE_RECORDED, invalid)
    await bus.js.publish(USAGE_RECORDED.subject("t1"), b"\xff\xff not protobuf", headers={"Nats-Msg-Id": "poison"})
    reasons = {}
    for _ in range(3):
        msg = await dlq.next_msg(timeout=5)
        reasons[msg.headers["Dreamforge-Original-Subject"], msg.headers["Nats-Msg-Id"]] = msg.headers[
            "Dreamforge-Dead-Letter-Reason"]
        assert msg.subject == f"{DLQ_ROOT}.billing-ledger.{USAGE_RECORDED.subject('t1')}"
    by_id = {key[1]: reason for key, reason in reasons.items()}
    assert "failed 2 times" in by_id["dlq:billing-ledger:bad"]
    assert by_id["dlq:billing-ledger:invalid"] == "tenant unknown"
    assert "undecodable UsageRecorded" in by_id["dlq:billing-ledger:poison"]
    assert seen.count("bad") == 2 and seen.count("invalid") == 1
    await nc.close()
    await bus.close()


async def test_restart_and_redelivery_have_exactly_once_effects(nats_url: str, tmp_path: Path) -> None:
    """A consumer crashing after its commit but before its ack sees the event again;
    the inbox makes the second delivery a no-op."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}", "billing")
    await db.migrate([])
    ledger = sa.Table("ledger", db.metadata, sa.Column("event_id", sa.String, primary_key=True),
                      sa.Column("images", sa.Integer))
    async with db.transaction() as conn:
        await conn.run_sync(lambda c: ledger.create(c))

    crash_before_ack = {"armed": True}

    async def handler(payload: events_pb2.UsageRecorded, delivery: Delivery) -> None:
        async def effect(conn: sa.ext.asyncio.AsyncConnection) -> None:
            await conn.execute(ledger.insert().values(event_id=delivery.event_id, images=payload.images))
        await db.handle_once(delivery.event_id, delivery.subject, effect)
        if crash_before_ack["armed"] and delivery.event_id == "e3":
            crash_before_ack["armed"] = False
            raise RuntimeError("process died between commit and ack")

    bus = await make_bus(nats_url, backoff_s=(0.05,))
    bus.subscribe(USAGE_RECORDED, handler, durable="billing-usage")
    await bus.start()
    for i in range(5):
        await bus.publish(USAGE_RECORDED, usage(event_id=f"e{i}", images=i))

    async def count() -> int:
        async with db.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(ledger))).scalar_one())

    await eventually(lambda: _eq(count, 5))
    await bus.close()
    # A "restarted" consumer (same durable name) plus a replay without the dedupe header.
    bus2 = await make_bus(nats_url)
    bus2.subscribe(USAGE_RECORDED, handler, durable="billing-usage")
    await bus2.start()
    await bus2.js.publish(USAGE_RECORDED.subject("t1"), usage(event_id="e1", images=1).SerializeToString())
    await bus2.publish(USAGE_RECORDED, usage(event_id="e5", images=5))
    await eventually(lambda: _eq(count, 6))
    await asyncio.sleep(0.3)
    assert await count() == 6
    async with db.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.sum(ledger.c.images)))).scalar_one() == 15
    await bus2.close()
    await db.close()


async def _eq(fn, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return bool(await fn() == expected)


async def test_trace_context_crosses_the_bus(nats_url: str) -> None:
    exporter = InMemorySpanExporter()
    configure_tracing("test", exporter=exporter)
    bus = await make_bus(nats_url)
    got: list[str] = []

    async def handler(payload: events_pb2.UsageRecorded, delivery: Delivery) -> None:
        got.append(delivery.headers.get("traceparent", ""))

    bus.subscribe(USAGE_RECORDED, handler, durable="trace-test")
    await bus.start()
    with trace.get_tracer("test").start_as_current_span("http request") as root:
        await bus.publish(USAGE_RECORDED, usage())
    await eventually(lambda: got)
    trace_id = format(root.get_span_context().trace_id, "032x")
    assert got[0].split("-")[1] == trace_id
    await eventually(lambda: any(s.name.endswith("process") for s in exporter.get_finished_spans()))
    consumer_span = next(s for s in exporter.get_finished_spans() if s.name.endswith("process"))
    publish_span = next(s for s in exporter.get_finished_spans() if s.name.endswith("publish")
                        and s.context.trace_id == root.get_span_context().trace_id)
    assert consumer_span.context.trace_id == root.get_span_context().trace_id
    assert publish_span.parent is not None and publish_span.parent.span_id == root.get_span_context().span_id
    assert consumer_span.parent is not None and consumer_span.parent.span_id == publish_span.context.span_id
    await bus.close()


@pytest.mark.parametrize("tenant", ["a.b", "a b", "*", ""])
def test_tenant_ids_that_would_break_subjects_are_refused(tenant: str) -> None:
    with pytest.raises(ValueError, match="subject token"):
        USAGE_RECORDED.subject(tenant)
