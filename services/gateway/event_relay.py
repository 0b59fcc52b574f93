"""Relays one tenant's platform events from NATS to a WebSocket client.

A core-NATS subscription (not a JetStream consumer: nothing is acked or stored for a
browser tab) on `dreamforge.v1.<event>.<tenant_id>` per wanted type, or
`dreamforge.v1.*.*.<tenant_id>` for all. The tenant token comes from the API key, and
each payload's `meta.tenant_id` is checked again before it is sent, so a client never
sees another tenant's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg

from dreamforge.bus import EventBus
from dreamforge.events import BY_NAME, SUBJECT_ROOT, event_from_subject
from dreamforge.grpcio import InvalidArgument

log = logging.getLogger("dreamforge.gateway.events")

QUEUE_LIMIT = 1000


class SlowConsumer(Exception):
    """The client reads events slower than they arrive; it should reconnect."""


def parse_types(types: str | None) -> list[str]:
    """`model.updated,training.progress` -> names, InvalidArgument naming an unknown one."""
    if not types:
        return []
    names = [t.strip() for t in types.split(",") if t.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise InvalidArgument(f"query field `types`: unknown event type(s) {unknown}; known: {sorted(BY_NAME)}")
    return names


def subjects_for(tenant_id: str, types: list[str]) -> list[str]:
    if not types:
        return [f"{SUBJECT_ROOT}.*.*.{tenant_id}"]
    return [BY_NAME[name].subject(tenant_id) for name in types]


def to_frame(msg: Msg, tenant_id: str) -> dict[str, Any] | None:
    """The JSON frame for one NATS message, or None when it must not (or cannot) be relayed."""
    try:
        event = event_from_subject(msg.subject)
        payload = event.payload.FromString(msg.data)
    except (KeyError, DecodeError):
        return None
    if payload.meta.tenant_id != tenant_id:
        log.warning("event tenant does not match its subject, dropped", extra={"subject": msg.subject})
        return None
    return {"type": event.name, "subject": msg.subject,
            "event": json_format.MessageToDict(payload, preserving_proto_field_name=True)}


class Feed:
    """Frames for one WebSocket, bounded: a client that falls QUEUE_LIMIT behind is cut off
    (it reconnects) rather than silently missing events or growing the gateway's memory."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=QUEUE_LIMIT + 1)
        self.overflowed = False

    async def on_message(self, msg: Msg) -> None:
        frame = to_frame(msg, self.tenant_id)
        if frame is None or self.overflowed:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self.overflowed = True
            self.queue.put_nowait(None)  # the one slot kept free for this marker
            return
        self.queue.put_nowait(frame)

    async def next(self) -> dict[str, Any]:
        frame = await self.queue.get()
        if frame is None:
            raise SlowConsumer(f"client fell more than {QUEUE_LIMIT} events behind")
        return frame


class EventRelay:
    def __init__(self, bus: EventBus) -> None:
        self.bus = bus

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant_id: str, types: list[str]) -> AsyncIterator[Feed]:
        """The tenant's events, until the context exits (then unsubscribed)."""
        feed = Feed(tenant_id)
        subs = [await self.bus.nc.subscribe(subject, cb=feed.on_message)
                for subject in subjects_for(tenant_id, types)]
        await self.bus.nc.flush()  # the server knows our interest before the client is told "subscribed"
        try:
            yield feed
        finally:
            for sub in subs:
                with contextlib.suppress(Exception):
                    await sub.unsubscribe()
