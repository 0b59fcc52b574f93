"""Served outputs, kept from `inference.completed` so ratings can refer to them by request id.

One row per request id (the primary key): a redelivered or replayed event finds
its row and changes nothing.
"""

from __future__ import annotations

from datetime import UTC

import sqlalchemy as sa
from alembic.operations import Operations
from sqlalchemy.ext.asyncio import AsyncConnection

from dreamforge.bus import Delivery
from dreamforge.db import Database, Migration, UtcDateTime
from dreamforge.v1 import events_pb2


class OutputStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.outputs = sa.Table(
            db.table("outputs"), db.metadata,
            sa.Column("request_id", sa.String(100), primary_key=True),
            sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
            sa.Column("model_id", sa.String(64), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("alias", sa.String(100), nullable=False),
            sa.Column("skill", sa.String(32), nullable=False),
            sa.Column("prompt", sa.Text, nullable=False),
            sa.Column("image_ref", sa.String(64), nullable=False),
            sa.Column("output_json", sa.Text, nullable=False),
            sa.Column("latency_ms", sa.Float, nullable=False),
            sa.Column("key_id", sa.String(64), nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
        )
        self.migrations = [Migration(1, "outputs", self._create)]

    def _create(self, op: Operations) -> None:
        self.outputs.create(op.get_bind(), checkfirst=True)

    async def keep(self, event: events_pb2.InferenceCompleted, delivery: Delivery) -> bool:
        async def write(conn: AsyncConnection) -> None:
            await self.db.insert_ignore(conn, self.outputs, {
                "request_id": event.request_id, "tenant_id": event.meta.tenant_id, "model_id": event.model_id,
                "version": event.version, "alias": event.alias, "skill": event.skill, "prompt": event.prompt,
                "image_ref": event.image_ref, "output_json": event.output_json, "latency_ms": event.latency_ms,
                "key_id": event.key_id, "created_at": event.meta.occurred_at.ToDatetime(tzinfo=UTC),
            })

        return await self.db.handle_once(delivery.event_id, delivery.subject, write)

    async def get(self, tenant_id: str, request_id: str) -> sa.Row[tuple[object, ...]] | None:
        """The output of `request_id` if it belongs to `tenant_id` (another tenant's is None)."""
        t = self.outputs
        async with self.db.engine.connect() as conn:
            return (await conn.execute(
                sa.select(t).where(t.c.request_id == request_id, t.c.tenant_id == tenant_id))).first()

    async def count(self, tenant_id: str) -> int:
        async with self.db.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(self.outputs)
                                           .where(self.outputs.c.tenant_id == tenant_id))).scalar_one())
