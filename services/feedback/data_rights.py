"""A tenant's feedback data: retention settings, the periodic purge, deletion and export (GDPR).

Purge removes outputs and ratings older than the tenant's retention (and ratings of purged
outputs, their queue assignments and stored images); deletion removes everything the service
holds for the tenant, including the outbox rows that carried its events; export streams it all
as JSON documents (the gateway sends them as JSON lines).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from dreamforge.db import Database, utcnow
from dreamforge.events import FEEDBACK_SUBMITTED, REWARD_SCORED
from dreamforge.grpcio import InvalidArgument
from dreamforge.image_store import ImageStore
from dreamforge.outbox import Outbox
from services.feedback.outputs import OutputStore
from services.feedback.tables import Tables

log = logging.getLogger("dreamforge.feedback.data")
EXPORT_PAGE = 500


@dataclass(frozen=True)
class DataSettings:
    retention_days: int
    queue_overlap: int


@dataclass
class Counts:
    outputs: int = 0
    feedback: int = 0
    reward_functions: int = 0
    queue_assignments: int = 0
    images: int = 0


class DataRights:
    def __init__(self, db: Database, tables: Tables, outputs: OutputStore, outbox: Outbox, images: ImageStore,
                 defaults: DataSettings) -> None:
        self.db = db
        self.tables = tables
        self.o = outputs.outputs
        self.outbox = outbox
        self.images = images
        self.defaults = defaults

    async def settings(self, tenant_id: str) -> DataSettings:
        s = self.tables.data_settings
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(s).where(s.c.tenant_id == tenant_id))).first()
        return DataSettings(row.retention_days, row.queue_overlap) if row is not None else self.defaults

    async def update(self, tenant_id: str, new: DataSettings) -> DataSettings:
        if not 0 <= new.retention_days <= 36500:
            raise InvalidArgument("retention_days must be between 0 (keep forever) and 36500")
        if not 1 <= new.queue_overlap <= 20:
            raise InvalidArgument("queue_overlap must be between 1 and 20 raters per item")
        s = self.tables.data_settings
        async with self.db.transaction() as conn:
            await conn.execute(s.delete().where(s.c.tenant_id == tenant_id))
            await conn.execute(s.insert().values(tenant_id=tenant_id, retention_days=new.retention_days,
                                                 queue_overlap=new.queue_overlap))
        return new

    async def purge(self, tenant_id: str) -> Counts:
        """Remove what is older than the tenant's retention; nothing when retention is 0 (forever)."""
        days = (await self.settings(tenant_id)).retention_days
        if days == 0:
            return Counts()
        cutoff = utcnow() - timedelta(days=days)
        r, a = self.tables.ratings, self.tables.assignments
        counts = Counts()
        async with self.db.transaction() as conn:
            old = sa.select(self.o.c.request_id).where(self.o.c.tenant_id == tenant_id, self.o.c.created_at < cutoff)
            counts.feedback = (await conn.execute(r.delete().where(r.c.tenant_id == tenant_id, sa.or_(
                r.c.created_at < cutoff, r.c.request_id.in_(old), r.c.other_request_id.in_(old))))).rowcount
            counts.queue_assignments = (await conn.execute(a.delete().where(
                a.c.tenant_id == tenant_id, a.c.request_id.in_(old)))).rowcount
            counts.outputs = (await conn.execute(self.o.delete().where(
                self.o.c.tenant_id == tenant_id, self.o.c.created_at < cutoff))).rowcount
        counts.images = await asyncio.to_thread(self.images.purge, tenant_id, days * 86400.0)
        return counts

    async def purge_all(self) -> None:
        """The periodic purge: every tenant with data."""
        async with self.db.engine.connect() as conn:
            tenants = set((await conn.execute(sa.select(self.o.c.tenant_id).distinct())).scalars())
            tenants |= set((await conn.execute(sa.select(self.tables.ratings.c.tenant_id).distinct())).scalars())
        for tenant in sorted(tenants):
            counts = await self.purge(tenant)
            if counts.outputs or counts.feedback or counts.images:
                log.info("purged expired data", extra={"tenant_id": tenant, **counts.__dict__})

    async def run_purges(self, interval_s: float) -> None:
        while True:
            try:
                await self.purge_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("purge failed; retrying at the next interval")
            await asyncio.sleep(interval_s)

    async def delete_tenant(self, tenant_id: str) -> Counts:
        t = self.tables
        counts = Counts()
        async with self.db.transaction() as conn:
            counts.feedback = (await conn.execute(
                t.ratings.delete().where(t.ratings.c.tenant_id == tenant_id))).rowcount
            counts.queue_assignments = (await conn.execute(
                t.assignments.delete().where(t.assignments.c.tenant_id == tenant_id))).rowcount
            counts.reward_functions = (await conn.execute(
                t.reward_functions.delete().where(t.reward_functions.c.tenant_id == tenant_id))).rowcount
            counts.outputs = (await conn.execute(self.o.delete().where(self.o.c.tenant_id == tenant_id))).rowcount
            await conn.execute(t.data_settings.delete().where(t.data_settings.c.tenant_id == tenant_id))
            subjects = [FEEDBACK_SUBMITTED.subject(tenant_id), REWARD_SCORED.subject(tenant_id)]
            await conn.execute(self.outbox.table.delete().where(self.outbox.table.c.subject.in_(subjects)))
        counts.images = await asyncio.to_thread(self.images.delete_tenant, tenant_id)
        return counts

    async def export(self, tenant_id: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(type, document) for everything held for the tenant, table by table, in pages."""
        settings = await self.settings(tenant_id)
        yield "settings", {"retention_days": settings.retention_days, "queue_overlap": settings.queue_overlap}
        t = self.tables
        for kind, table in (("output", self.o), ("feedback", t.ratings), ("reward_function", t.reward_functions)):
            offset = 0
            while True:
                async with self.db.engine.connect() as conn:
                    rows = (await conn.execute(sa.select(table).where(table.c.tenant_id == tenant_id)
                                               .order_by(*table.primary_key.columns)
                                               .offset(offset).limit(EXPORT_PAGE))).all()
                for row in rows:
                    yield kind, {_name(k): _plain(k, v) for k, v in row._mapping.items() if k != "idempotency_key"}
                if len(rows) < EXPORT_PAGE:
                    break
                offset += EXPORT_PAGE


def _name(column: str) -> str:
    return column.removesuffix("_json")


def _plain(column: str, value: Any) -> Any:
    """JSON columns as JSON, times as ISO 8601."""
    if column.endswith("_json") and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value.isoformat() if hasattr(value, "isoformat") else value
