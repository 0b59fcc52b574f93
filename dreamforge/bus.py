"""The JetStream event bus every service uses to publish and consume events.

Guarantees it gives the services:
- streams (from the catalogue in `events.py`) are created or updated idempotently on connect;
- every publish carries `Nats-Msg-Id` = the event id, so JetStream drops duplicates
  inside its de-duplication window, and the W3C trace context;
- consumers are durable pull consumers with explicit acks: a message is acked only
  after its handler returned, i.e. after the handler committed its effect;
- a failing handler gets the message again with growing back-off (`nak(delay)`);
  after `max_deliveries` attempts, or at once for a payload that cannot be decoded
  or a `PermanentError`, the message is copied to `dreamforge.dlq.<consumer>...` and
  terminated so it cannot block the stream.
Handlers must make their effect idempotent by event id (see `db.Inbox`): JetStream
delivers at least once.

A consumer that must go faster than one transaction per event (the billing ledger) also
passes a `batch_handler`: it gets every decodable message of a fetch at once, commits them
in one transaction, and they are acked together; if it raises, each message of the batch
goes through the per-message handler instead, so retries and dead letters work as above.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from dreamforge.events import DLQ_ROOT, EventType, streams
from dreamforge.metrics import meter
from dreamforge.tracing import extract_context, inject_headers

log = logging.getLogger("dreamforge.bus")
_tracer = trace.get_tracer("dreamforge.bus")
#: Events taken off a durable consumer, by consumer and outcome (acked, redelivered, dead_lettered):
#: a rising dead_lettered count is what to alert on.
_consumed = meter("dreamforge.bus").create_counter(
    "dreamforge.events.consumed", description="Events a durable consumer handled, by outcome")

DUPLICATE_WINDOW_S = 120.0
DEFAULT_BACKOFF_S = (0.2, 1.0, 3.0, 10.0, 30.0)


class PermanentError(Exception):
    """Raised by a handler for an event that can never succeed: dead-letter it at once."""


@dataclass(frozen=True)
class Delivery:
    """What a handler learns about the message besides its payload."""

    subject: str
    event: EventType
    event_id: str
    num_delivered: int
    headers: dict[str, str]


Handler = Callable[[Any, Delivery], Awaitable[None]]
BatchHandler = Callable[[list[tuple[Any, Delivery]]], Awaitable[None]]


@dataclass
class _Consumer:
    event: EventType
    durable: str
    handler: Handler
    batch: int
    task: asyncio.Task[None] | None = None
    processed: int = field(default=0)
    batch_handler: BatchHandler | None = None


class EventBus:
    """One NATS connection per process, shared by its publishers and consumers."""

    def __init__(
        self,
        nats_url: str,
        service: str,
        *,
        max_deliveries: int = 5,
        backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S,
        ack_wait_s: float = 30.0,
    ) -> None:
        self.nats_url = nats_url
        self.service = service
        self.max_deliveries = max_deliveries
        self.backoff_s = backoff_s
        self.ack_wait_s = ack_wait_s
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._ack_timeout_s = 10.0  # the JetStream context's, set again by `connect`
        self._consumers: list[_Consumer] = []
        self._stopping = asyncio.Event()

    # -- connection ---------------------------------------------------------------
    @property
    def nc(self) -> NATS:
        if self._nc is None:
            raise RuntimeError("EventBus.connect() has not been called")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("EventBus.connect() has not been called")
        return self._js

    async def connect(self, timeout_s: float = 10.0) -> None:
        """Connect (retrying until `timeout_s`) and make sure every stream exists."""
        self._nc = await nats.connect(
            self.nats_url,
            name=f"dreamforge-{self.service}",
            connect_timeout=2,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )
        self._js = self._nc.jetstream(timeout=timeout_s)
        self._ack_timeout_s = timeout_s
        await self.ensure_streams()

    async def ensure_streams(self) -> None:
        """Create the catalogue's streams, or update them to the current config."""
        for name, subjects in streams().items():
            config = StreamConfig(
                name=name,
                subjects=subjects,
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_S,
            )
            try:
                await self.js.add_stream(config)
            except BadRequestError:
                await self.js.update_stream(config)

    def is_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    # -- publishing ---------------------------------------------------------------
    async def publish(self, event: EventType, payload: Message) -> bool:
        """Publish `payload` (whose `meta` names tenant and event id). Returns False when
        JetStream recognised it as a duplicate of an earlier publish."""
        meta = payload.meta  # type: ignore[attr-defined]
        subject = event.subject(meta.tenant_id)
        headers = {"Nats-Msg-Id": meta.event_id, "Dreamforge-Event": event.name}
        return await self.publish_raw(subject, payload.SerializeToString(), headers)

    async def publish_raw(self, subject: str, data: bytes, headers: dict[str, str]) -> bool:
        """Publish bytes under a PRODUCER span whose context the headers then carry, so consumers'
        spans are its children. Headers that already carry a context (the outbox stores the one of
        the transaction that created the event) make it the span's parent: a relayed event stays
        in the trace of the request that caused it."""
        with trace.use_span(_publish_span(subject, headers), end_on_exit=True):
            ack = await self.js.publish(subject, data, headers=headers)
        return not ack.duplicate

    async def publish_raw_many(self, messages: Sequence[tuple[str, bytes, dict[str, str]]]) -> list[bool | Exception]:
        """Publish `messages` in order without waiting for each one's ack, then wait for all acks
        together: n events cost one round trip to the server instead of n (the outbox relay's pass).
        Returns, per message in order: True, False for a duplicate, or the exception of its failed
        publish (TimeoutError when no ack came in time; a message after a failed send is not sent
        and gets that failure). Each message has its PRODUCER span, as in `publish_raw`."""
        spans: list[trace.Span] = []
        acks: list[asyncio.Future[Any]] = []
        send_error: Exception | None = None
        for subject, data, headers in messages:
            spans.append(_publish_span(subject, headers))
            try:
                # Written to the connection before it returns: the stream gets them in this order.
                acks.append(await self.js.publish_async(subject, data, headers=headers))
            except Exception as exc:
                send_error = exc
                break
        try:
            if acks:
                await asyncio.wait(acks, timeout=self._ack_timeout_s)
        finally:  # also when cancelled: no ack left awaited, every span ended
            results = [_ack_result(ack, self._ack_timeout_s) for ack in acks]
            if send_error is not None:
                results += [send_error] * (len(messages) - len(results))
            for span, result in zip(spans, results, strict=False):
                if isinstance(result, Exception):
                    span.set_status(Status(StatusCode.ERROR, repr(result)))
                span.end()
        return results

    # -- consuming ----------------------------------------------------------------
    def subscribe(self, event: EventType, handler: Handler, *, durable: str | None = None, batch: int = 64,
                  batch_handler: BatchHandler | None = None) -> None:
        """Register a durable consumer; it starts pulling on `start()`. With `batch_handler`, each
        fetch (up to `batch` messages) is handled in one call; `handler` is the per-message fallback."""
        name = durable or f"{self.service}-{event.name.replace('.', '-')}"
        self._consumers.append(_Consumer(event=event, durable=name, handler=handler, batch=batch,
                                         batch_handler=batch_handler))

    async def start(self) -> None:
        for consumer in self._consumers:
            if consumer.task is None:
                sub = await self.js.pull_subscribe(
                    consumer.event.all_tenants,
                    durable=consumer.durable,
                    stream=consumer.event.stream,
                    config=ConsumerConfig(
                        ack_policy=AckPolicy.EXPLICIT,
                        deliver_policy=DeliverPolicy.ALL,
                        ack_wait=self.ack_wait_s,
                        max_ack_pending=1000,
                    ),
                )
                consumer.task = asyncio.create_task(self._pull_loop(consumer, sub), name=consumer.durable)

    async def _pull_loop(self, consumer: _Consumer, sub: JetStreamContext.PullSubscription) -> None:
        while not self._stopping.is_set():
            try:
                messages = await sub.fetch(consumer.batch, timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError):
                await asyncio.sleep(0.2)
                continue
            except Exception:  # keep consuming through transient server errors
                log.exception("fetch failed", extra={"consumer": consumer.durable})
                await asyncio.sleep(0.5)
                continue
            batched = consumer.batch_handler is not None and len(messages) > 1
            if batched and await self._handle_batch(consumer, messages):
                continue
            for msg in messages:
                # In-flight messages finish even during shutdown: that is the drain.
                await self._handle(consumer, msg)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()

    async def _handle(self, consumer: _Consumer, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        num = msg.metadata.num_delivered
        event_id = headers.get("Nats-Msg-Id", "")
        try:
            payload = consumer.event.payload.FromString(msg.data)
        except DecodeError as exc:
            await self._dead_letter(consumer, msg, f"undecodable {consumer.event.payload.__name__}: {exc}")
            return
        delivery = Delivery(msg.subject, consumer.event, event_id or payload.meta.event_id, num, headers)
        with _tracer.start_as_current_span(
            f"{msg.subject} process",
            context=extract_context(headers),
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "nats", "messaging.destination.name": msg.subject,
                        "messaging.message.id": delivery.event_id, "messaging.consumer.group.name": consumer.durable,
                        "messaging.delivery_count": num},
        ) as span:
            try:
                await consumer.handler(payload, delivery)
            except PermanentError as exc:
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                await self._dead_letter(consumer, msg, str(exc))
                return
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                if num >= self.max_deliveries:
                    await self._dead_letter(consumer, msg, f"failed {num} times, last error: {exc!r}")
                else:
                    delay = self.backoff_s[min(num - 1, len(self.backoff_s) - 1)]
                    log.warning("handler failed, redelivering", extra={
                        "consumer": consumer.durable, "event_id": delivery.event_id,
                        "delivery": num, "retry_in_s": delay, "error": repr(exc)})
                    await msg.nak(delay=delay)
                    _consumed.add(1, {"consumer": consumer.durable, "outcome": "redelivered"})
                return
        await msg.ack()
        consumer.processed += 1
        _consumed.add(1, {"consumer": consumer.durable, "outcome": "acked"})

    async def _handle_batch(self, consumer: _Consumer, messages: list[Msg]) -> bool:
        """All of `messages` through the batch handler and acked; False (nothing acked) when it
        raised or a payload does not decode: the caller then handles them one by one."""
        items: list[tuple[Any, Delivery]] = []
        links: list[trace.Link] = []
        for msg in messages:
            headers = dict(msg.headers or {})
            try:
                payload = consumer.event.payload.FromString(msg.data)
            except DecodeError:
                return False
            event_id = headers.get("Nats-Msg-Id", "") or payload.meta.event_id
            items.append((payload, Delivery(msg.subject, consumer.event, event_id, msg.metadata.num_delivered,
                                            headers)))
            context = trace.get_current_span(extract_context(headers)).get_span_context()
            if context.is_valid:
                links.append(trace.Link(context))
        with _tracer.start_as_current_span(
            f"{consumer.event.all_tenants} process batch", kind=SpanKind.CONSUMER, links=links,
            attributes={"messaging.system": "nats", "messaging.batch.message_count": len(messages),
                        "messaging.consumer.group.name": consumer.durable},
        ) as span:
            assert consumer.batch_handler is not None
            try:
                await consumer.batch_handler(items)
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, str(exc)))
                log.warning("batch handler failed; handling the batch one message at a time",
                            extra={"consumer": consumer.durable, "messages": len(messages), "error": repr(exc)})
                return False
        for msg in messages:
            await msg.ack()
        consumer.processed += len(messages)
        _consumed.add(len(messages), {"consumer": consumer.durable, "outcome": "acked"})
        return True

    async def _dead_letter(self, consumer: _Consumer, msg: Msg, reason: str) -> None:
        headers = dict(msg.headers or {})
        original_id = headers.get("Nats-Msg-Id", "")
        headers.update({
            "Dreamforge-Original-Subject": msg.subject,
            "Dreamforge-Dead-Letter-Reason": reason[:500],
            "Dreamforge-Deliveries": str(msg.metadata.num_delivered),
            "Nats-Msg-Id": f"dlq:{consumer.durable}:{original_id or msg.metadata.sequence.stream}",
        })
        subject = f"{DLQ_ROOT}.{consumer.durable}.{msg.subject}"
        await self.js.publish(subject, msg.data, headers=headers)
        await msg.term()
        _consumed.add(1, {"consumer": consumer.durable, "outcome": "dead_lettered"})
        log.error("event dead-lettered", extra={"consumer": consumer.durable, "subject": msg.subject,
                                                "event_id": original_id, "reason": reason})

    async def stop_consuming(self) -> None:
        """Stop pulling and let the handlers finish the messages in hand (publishing still works)."""
        self._stopping.set()
        tasks = [c.task for c in self._consumers if c.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop consuming, flush what was published, then close the connection.

        Every publish already awaited its JetStream ack and every consumer finished its
        message, so nothing is in flight: a plain close is the drain."""
        await self.stop_consuming()
        if self._nc is not None and not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=2)
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = None
        self._js = None

    async def delete_consumers(self) -> None:
        """Remove this bus's durable consumers (tests and tenant clean-up)."""
        for consumer in self._consumers:
            with contextlib.suppress(NotFoundError):
                await self.js.delete_consumer(consumer.event.stream, consumer.durable)


def _publish_span(subject: str, headers: dict[str, str]) -> trace.Span:
    """A started PRODUCER span for publishing to `subject`, its context injected into `headers`. A
    context the headers already carry (the outbox stores the one of the transaction that created
    the event) is its parent, so a relayed event stays in the trace of the request that caused it."""
    stored = extract_context(headers) if "traceparent" in headers else None
    span = _tracer.start_span(
        f"{subject} publish", context=stored, kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "nats", "messaging.destination.name": subject,
                    "messaging.message.id": headers.get("Nats-Msg-Id", "")})
    with trace.use_span(span, end_on_exit=False):
        inject_headers(headers)
    return span


def _ack_result(ack: asyncio.Future[Any], timeout_s: float) -> bool | Exception:
    """True (stored), False (a duplicate), or why the publish failed; cancels an ack still awaited."""
    if not ack.done():
        ack.cancel()
        return TimeoutError(f"no JetStream ack within {timeout_s:g} s")
    if ack.cancelled():
        return RuntimeError("the publish was cancelled")
    error = ack.exception()
    if error is not None:
        return error if isinstance(error, Exception) else RuntimeError(repr(error))
    return not ack.result().duplicate
