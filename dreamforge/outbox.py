"""Transactional outbox: events are written in the same transaction as the change
they describe, and a relay publishes them to JetStream afterwards.

Why: a service that commits a change (say, an alias moved) and then crashes before
publishing would lose the `model.updated` event; one that publishes first and then
fails to commit would announce a change that never happened. With the outbox the
event exists iff the change does. The relay publishes each row with
`Nats-Msg-Id` = event id (JetStream drops a second publish after a crash between
publish and mark-sent) and the trace context captured when the row was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from dreamforge.bus import EventBus
from dreamforge.db import Database, Migration, UtcDateTime, utcnow
from dreamforge.events import EventType
from dreamforge.tracing import inject_headers

log = logging.getLogger("dreamforge.outbox")


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.table = sa.Table(
            db.table("outbox"), db.metadata,
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("event_id", sa.String(100), nullable=False, unique=True),
            sa.Column("subject", sa.String(300), nullable=False),
            sa.Column("payload", sa.LargeBinary, nullable=False),
            sa.Column("headers", sa.Text, nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
            sa.Column("published_at", UtcDateTime, nullable=True, index=True),
        )
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def migration(self, migration_id: int) -> Migration:
        """The migration creating the outbox table, to put in the service's list."""
        def up(op: object) -> None:
            conn = op.get_bind()  # type: ignore[attr-defined]
            self.table.create(conn, checkfirst=True)
        return Migration(migration_id, "outbox", up)

    async def add(self, conn: AsyncConnection, event: EventType, payload: Message) -> None:
        """Queue `payload` inside the caller's transaction."""
        meta = payload.meta  # type: ignore[attr-defined]
        headers = inject_headers({"Nats-Msg-Id": meta.event_id, "Dreamforge-Event": event.name})
        await conn.execute(self.table.insert().values(
            event_id=meta.event_id, subject=event.subject(meta.tenant_id), payload=payload.SerializeToString(),
            headers=json.dumps(headers), created_at=utcnow(), published_at=None))

    def notify(self) -> None:
        """Tell the relay there is something new (it also polls)."""
        self._wakeup.set()

    async def publish_pending(self, bus: EventBus, limit: int = 500) -> int:
        """Publish unsent rows in order; returns how many were sent."""
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(self.table.c.seq, self.table.c.subject, self.table.c.payload, self.table.c.headers)
                .where(self.table.c.published_at.is_(None)).order_by(self.table.c.seq).limit(limit)
            )).all()
        for row in rows:
            await bus.publish_raw(row.subject, row.payload, json.loads(row.headers))
            async with self.db.engine.begin() as conn:
                await conn.execute(self.table.update().where(self.table.c.seq == row.seq)
                                   .values(published_at=utcnow()))
        return len(rows)

    def start_relay(self, bus: EventBus, poll_s: float = 1.0) -> None:
        self._task = asyncio.create_task(self._relay(bus, poll_s), name=f"{self.db.service}-outbox")

    async def _relay(self, bus: EventBus, poll_s: float) -> None:
        while True:
            try:
                while await self.publish_pending(bus):
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), poll_s)

    async def stop(self, bus: EventBus) -> None:
        """Stop the relay after a last flush, so SIGTERM doesn't strand events."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.publish_pending(bus)
