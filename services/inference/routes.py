"""The routing table: which version each model alias and preview serves right now.

Fed by `model.updated`; this is what the model runtime will read to hot-swap
adapters. An older event arriving after a newer one (by occurred_at) does not move
an alias back.
"""

from __future__ import annotations

from datetime import UTC

import sqlalchemy as sa
from alembic.operations import Operations
from sqlalchemy.ext.asyncio import AsyncConnection

from dreamforge.bus import Delivery
from dreamforge.db import Database, Migration, UtcDateTime
from dreamforge.v1 import events_pb2


class RouteTable:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.routes = sa.Table(
            db.table("routes"), db.metadata,
            sa.Column("tenant_id", sa.String(64), primary_key=True),
            sa.Column("model_id", sa.String(64), primary_key=True),
            sa.Column("alias", sa.String(100), primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("is_preview", sa.Boolean, nullable=False),
            sa.Column("artifact_sha256", sa.String(64), nullable=False),
            sa.Column("updated_at", UtcDateTime, nullable=False),
        )
        self.migrations = [Migration(1, "routes", self._create)]

    def _create(self, op: Operations) -> None:
        self.routes.create(op.get_bind(), checkfirst=True)

    async def apply(self, event: events_pb2.ModelUpdated, delivery: Delivery) -> bool:
        at = event.meta.occurred_at.ToDatetime(tzinfo=UTC)
        key = {"tenant_id": event.meta.tenant_id, "model_id": event.model_id, "alias": event.alias}
        t = self.routes

        async def write(conn: AsyncConnection) -> None:
            where = sa.and_(*(t.c[k] == v for k, v in key.items()))
            current = (await conn.execute(sa.select(t.c.updated_at).where(where))).first()
            if current is not None and current.updated_at > at:
                return  # stale event
            await conn.execute(t.delete().where(where))
            if event.version > 0 and event.action != "delete":
                await conn.execute(t.insert().values(**key, version=event.version, is_preview=event.is_preview,
                                                     artifact_sha256=event.artifact_sha256, updated_at=at))

        return await self.db.handle_once(delivery.event_id, delivery.subject, write)

    async def version_for(self, tenant_id: str, model_id: str, alias: str) -> int | None:
        t = self.routes
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(t.c.version).where(
                t.c.tenant_id == tenant_id, t.c.model_id == model_id, t.c.alias == alias))).first()
        return None if row is None else int(row.version)
