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
from collections.abc import Awaitable, Callable, Sequence

import sqlalchemy as sa
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from dreamforge.bus import EventBus
from dreamforge.db import Database, Migration, UtcDateTime, utcnow
from dreamforge.events import EventType
from dreamforge.tracing import inject_headers

log = logging.getLogger("dreamforge.outbox")

#: Rows the relay reads and publishes at a time.
RELAY_BATCH = 500


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
        await self.add_many(conn, [(event, payload)])

    async def add_many(self, conn: AsyncConnection, events: Sequence[tuple[EventType, Message]]) -> None:
        """Queue several events inside the caller's transaction, in order, with one statement.

        One INSERT of all rows instead of one per event: on a request path (inference writes
        two events per answer) every statement is a round trip to the database driver."""
        rows = self.rows(events)
        if rows:
            await conn.execute(self.table.insert(), rows)

    def rows(self, events: Sequence[tuple[EventType, Message]]) -> list[dict[str, object]]:
        """The outbox rows of `events`, each with the current trace context (for `insert`, or `add_many`)."""
        now = utcnow()
        rows = []
        for event, payload in events:
            meta = payload.meta  # type: ignore[attr-defined]
            headers = inject_headers({"Nats-Msg-Id": meta.event_id, "Dreamforge-Event": event.name})
            rows.append({"event_id": meta.event_id, "subject": event.subject(meta.tenant_id),
                         "payload": payload.SerializeToString(), "headers": json.dumps(headers),
                         "created_at": now, "published_at": None})
        return rows

    def insert(self, conn: sa.Connection, rows: list[dict[str, object]]) -> None:
        """Queue `rows` inside a synchronous transaction (`Database.write`) with one statement."""
        if rows:
            conn.execute(self.table.insert(), rows)

    def notify(self) -> None:
        """Tell the relay there is something new (it also polls)."""
        self._wakeup.set()

    async def publish_pending(self, bus: EventBus, limit: int = RELAY_BATCH) -> int:
        """Publish unsent rows in order; returns how many were sent."""
        query = (sa.select(self.table.c.seq, self.table.c.subject, self.table.c.payload, self.table.c.headers)
                 .where(self.table.c.published_at.is_(None)).order_by(self.table.c.seq).limit(limit))
        # Read and marked with `Database.read` / `write`: on SQLite one thread hop each, not one per
        # statement; on the inference process the relay runs after every answer, beside the next one.
        rows = await self.db.read(lambda conn: conn.execute(query).all())
        # Published in order, their acks awaited together (one round trip per pass, not per row);
        # marked sent in one transaction up to the first failure (one per row cost a commit per
        # event, on the same event loop and cores as the requests). The failed row and those after
        # it go again in the next pass; a crash before the mark re-publishes the rows. JetStream
        # drops those it already has (same `Nats-Msg-Id` within its duplicate window).
        sent: list[int] = []
        try:
            results = await bus.publish_raw_many(
                [(row.subject, row.payload, json.loads(row.headers)) for row in rows]) if rows else []
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, Exception):
                    raise result
                sent.append(row.seq)
        finally:
            if sent:
                mark = self.table.update().where(self.table.c.seq.in_(sent)).values(published_at=utcnow())
                await self.db.write(lambda conn: conn.execute(mark))
        return len(rows)

    def start_relay(self, bus: EventBus, poll_s: float = 1.0, limit: int = RELAY_BATCH,
                    settle: Callable[[], Awaitable[object]] | None = None) -> None:
        """Publish in the background after a `notify()`, else every `poll_s`, at most `limit` rows
        per read. `settle`, when given, is awaited between a `notify()` and the pass.

        Why settle: a pass wakes the NATS server and every consumer of the events it publishes. On a
        request path (inference notifies after every answer) a pass per answer lands on the next
        request; inference settles with `Activity.quiet`, so the pass runs where no request is, or
        takes a whole window of answers at once under steady load (bench/RESULTS.md, "Gateway
        overhead")."""
        self._task = asyncio.create_task(self._relay(bus, poll_s, limit, settle), name=f"{self.db.service}-outbox")

    async def _relay(self, bus: EventBus, poll_s: float, limit: int,
                     settle: Callable[[], Awaitable[object]] | None) -> None:
        while True:
            # Cleared before reading, so a row committed while this pass publishes sets it again
            # and the next pass starts at once; a pass that found fewer rows than `limit` needs no
            # second, empty read (on the inference process that read cost the next request's
            # generation CPU time at every answer).
            self._wakeup.clear()
            try:
                while await self.publish_pending(bus, limit) >= limit:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), poll_s)
                if settle is not None:
                    await settle()

    async def stop(self, bus: EventBus) -> None:
        """Stop the relay after a last flush, so SIGTERM doesn't strand events."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.publish_pending(bus)
