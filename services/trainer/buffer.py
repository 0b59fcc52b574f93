"""The reward buffer: every `reward.scored` event, once, waiting to become training data.

The online trigger reads how many unconsumed rewards a tenant's model has; a job claims
them (`take`) and gives them back if it fails (`releaser`), so a failed or interrupted job
loses none. The buffer is durable and each event is stored once (inbox), so a trainer
restart or a redelivery neither loses nor double-counts a reward.
"""

from __future__ import annotations

import json
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

    async def take(self, tenant_id: str, model_id: str, job_id: str, limit: int) -> list[dict[str, object]]:
        """Claim up to `limit` pending rewards (oldest first) for `job_id`; their payloads as dicts."""
        t = self.rewards
        async with self.db.transaction() as conn:
            ids = (await conn.execute(sa.select(t.c.event_id).where(
                t.c.tenant_id == tenant_id, t.c.model_id == model_id, t.c.consumed_by_job.is_(None))
                .order_by(t.c.received_at, t.c.event_id).limit(limit))).scalars().all()
            if ids:
                await conn.execute(t.update().where(t.c.event_id.in_(ids)).values(consumed_by_job=job_id))
            rows = (await conn.execute(sa.select(t.c.payload_json).where(t.c.consumed_by_job == job_id))).scalars()
            return [json.loads(r) for r in rows]

    def releaser(self, job_id: str):  # type: ignore[no-untyped-def]
        """A function giving `job_id`'s rewards back to the buffer inside the caller's transaction
        (a failed or cancelled job must not eat them)."""
        async def release(conn: AsyncConnection) -> None:
            await conn.execute(self.rewards.update().where(self.rewards.c.consumed_by_job == job_id)
                               .values(consumed_by_job=None))
        return release

    async def pending_by_model(self) -> dict[tuple[str, str], int]:
        t = self.rewards
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.c.tenant_id, t.c.model_id, sa.func.count()).where(
                t.c.consumed_by_job.is_(None)).group_by(t.c.tenant_id, t.c.model_id))).all()
        return {(r[0], r[1]): int(r[2]) for r in rows}
