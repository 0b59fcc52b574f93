"""The reward buffer: every `reward.scored` event, once, waiting to become training data.

The online trigger (a later issue) reads how many unconsumed rewards a tenant's
model has; the buffer is durable so a trainer restart loses none of them.
"""

from __future__ import annotations

from datetime import UTC

import sqlalchemy as sa
from alembic.operations import Operations
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncConnection

from dreamforge.bus import Delivery
from dreamforge.db import Database, Migration, UtcDateTime
from dreamforge.v1 import events_pb2


class RewardBuffer:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.rewards = sa.Table(
            db.table("rewards"), db.metadata,
            sa.Column("event_id", sa.String(100), primary_key=True),
            sa.Column("tenant_id", sa.String(64), nullable=False),
            sa.Column("model_id", sa.String(64), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("reward", sa.Float, nullable=False),
            sa.Column("payload_json", sa.Text, nullable=False),
            sa.Column("received_at", UtcDateTime, nullable=False),
            sa.Column("consumed_by_job", sa.String(64), nullable=True),
            sa.Index(f"{db.table('rewards')}_pending", "tenant_id", "model_id", "consumed_by_job"),
        )
        self.migrations = [Migration(1, "rewards", self._create)]

    def _create(self, op: Operations) -> None:
        self.rewards.create(op.get_bind(), checkfirst=True)

    async def add(self, event: events_pb2.RewardScored, delivery: Delivery) -> bool:
        async def write(conn: AsyncConnection) -> None:
            await self.db.insert_ignore(conn, self.rewards, {
                "event_id": delivery.event_id, "tenant_id": event.meta.tenant_id, "model_id": event.model_id,
                "version": event.version, "reward": event.reward,
                "payload_json": json_format.MessageToJson(event, indent=None),
                "received_at": event.meta.occurred_at.ToDatetime(tzinfo=UTC), "consumed_by_job": None,
            })

        return await self.db.handle_once(delivery.event_id, delivery.subject, write)

    async def pending(self, tenant_id: str, model_id: str) -> int:
        t = self.rewards
        async with self.db.engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(t).where(
                t.c.tenant_id == tenant_id, t.c.model_id == model_id, t.c.consumed_by_job.is_(None)))).scalar_one())
