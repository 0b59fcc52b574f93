"""The usage ledger: `usage.recorded` in, one row per event id out.

The event id is the primary key and the inbox records it in the same transaction,
so redelivery, duplicate publishes and replays after the JetStream dedupe window
never count a request twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dreamforge.bus import Delivery
from dreamforge.db import Database
from dreamforge.v1 import events_pb2
from services.billing.tables import BillingTables


@dataclass(frozen=True)
class UsageTotals:
    requests: int
    images: int
    input_tokens: int
    output_tokens: int


class Ledger:
    def __init__(self, db: Database, tables: BillingTables) -> None:
        self.db = db
        self.tables = tables

    async def record(self, event: events_pb2.UsageRecorded, delivery: Delivery) -> bool:
        """Write the ledger row for `event`; False when it was already recorded."""

        async def write(conn: AsyncConnection) -> None:
            await self.db.insert_ignore(conn, self.tables.ledger, {
                "event_id": delivery.event_id, "tenant_id": event.meta.tenant_id, "request_id": event.request_id,
                "key_id": event.key_id, "model_id": event.model_id, "version": event.version,
                "alias": event.alias, "is_preview": event.is_preview, "skill": event.skill,
                "images": event.images, "input_tokens": event.input_tokens, "output_tokens": event.output_tokens,
                "latency_ms": event.latency_ms, "occurred_at": event.meta.occurred_at.ToDatetime(tzinfo=UTC),
            })

        return await self.db.handle_once(delivery.event_id, delivery.subject, write)

    async def totals(self, tenant_id: str) -> UsageTotals:
        t = self.tables.ledger
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(t.c.images), 0),
                sa.func.coalesce(sa.func.sum(t.c.input_tokens), 0), sa.func.coalesce(sa.func.sum(t.c.output_tokens), 0),
            ).where(t.c.tenant_id == tenant_id))).one()
        return UsageTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

