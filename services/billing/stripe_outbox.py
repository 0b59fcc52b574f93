"""The Stripe outbox: billable images grouped into meter events, written with the ledger.

A ledger row with a cost adds its billable images to the open group of its tenant and
skill, in the same transaction as the row (so a group's quantity is exactly the sum of
its rows' billable images: `ledger.stripe_group` says which). The first row of a group
names it: the group id is `dfm_` + a hash of that ledger event id, and it is the meter
event's `identifier` and the request's idempotency key, so a group can be sent again
after any crash and Stripe still counts it once.

Lifecycle: open -> sealed (by the worker, `stripe_flush_s` after it opened; later rows
open a new group) -> sent (Stripe accepted it). Nothing is ever deleted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from dreamforge.db import Database, UtcDateTime, utcnow
from services.billing.tables import BillingTables

OPEN, SEALED, SENT = "open", "sealed", "sent"


def group_id(first_event_id: str) -> str:
    """The meter event identifier of the group opened by ledger event `first_event_id` (Stripe allows 100 chars)."""
    return "dfm_" + hashlib.sha256(first_event_id.encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Addition:
    """Billable images a batch adds to the open group of one (tenant, skill)."""

    quantity: int
    last_occurred_at: datetime
    first_event_id: str


@dataclass(frozen=True)
class Group:
    id: str
    tenant_id: str
    skill: str
    quantity: int
    last_occurred_at: datetime
    attempts: int


class StripeOutbox:
    def __init__(self, db: Database, tables: BillingTables) -> None:
        self.db = db
        self.table = tables.stripe_groups

    async def add_many(self, conn: AsyncConnection, additions: dict[tuple[str, str], Addition]) -> dict[
            tuple[str, str], str]:
        """Add each batch's billable images to the open group of its (tenant, skill), opening one
        where there is none (named after the batch's first ledger event of that pair), in three
        statements; the group id of each.

        The open groups are read FOR UPDATE (PostgreSQL; on SQLite the transaction already holds
        the write lock), so the worker cannot seal one between this read and the update."""
        t = self.table
        tenants = sorted({tenant for tenant, _ in additions})
        found = {(r.tenant_id, r.skill): r.id for r in await conn.execute(
            sa.select(t.c.id, t.c.tenant_id, t.c.skill).where(t.c.status == OPEN, t.c.tenant_id.in_(tenants))
            .with_for_update()) if (r.tenant_id, r.skill) in additions}
        if found:
            last = sa.bindparam("last", type_=UtcDateTime())
            await conn.execute(
                t.update().where(t.c.id == sa.bindparam("gid"))
                .values(quantity=t.c.quantity + sa.bindparam("q"),
                        last_occurred_at=sa.case((t.c.last_occurred_at < last, last), else_=t.c.last_occurred_at)),
                [{"gid": gid, "q": additions[key].quantity, "last": additions[key].last_occurred_at}
                 for key, gid in found.items()])
        new = {key: group_id(a.first_event_id) for key, a in additions.items() if key not in found}
        if new:
            now = utcnow()
            await conn.execute(t.insert(), [
                {"id": gid, "tenant_id": key[0], "skill": key[1], "status": OPEN, "quantity": additions[key].quantity,
                 "opened_at": now, "last_occurred_at": additions[key].last_occurred_at, "attempts": 0}
                for key, gid in new.items()])
        return {**found, **new}

    async def seal(self, older_than_s: float) -> int:
        """Close the groups open for at least `older_than_s`: from now on they only wait to be sent."""
        t = self.table
        async with self.db.transaction() as conn:
            result = await conn.execute(t.update().where(
                t.c.status == OPEN, t.c.opened_at <= utcnow() - timedelta(seconds=older_than_s))
                .values(status=SEALED, next_attempt_at=utcnow()))
        return int(result.rowcount or 0)

    async def due(self, limit: int = 100) -> list[Group]:
        t = self.table
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(t).where(t.c.status == SEALED, t.c.next_attempt_at <= utcnow())
                                       .order_by(t.c.opened_at).limit(limit))).all()
        return [Group(r.id, r.tenant_id, r.skill, int(r.quantity), r.last_occurred_at, int(r.attempts)) for r in rows]

    async def mark_sent(self, gid: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(self.table.update().where(self.table.c.id == gid)
                               .values(status=SENT, sent_at=utcnow(), last_error=None))

    async def mark_failed(self, gid: str, error: str, retry_in_s: float) -> None:
        t = self.table
        async with self.db.transaction() as conn:
            await conn.execute(t.update().where(t.c.id == gid).values(
                attempts=t.c.attempts + 1, last_error=error[:2000],
                next_attempt_at=utcnow() + timedelta(seconds=retry_in_s)))

    async def counts(self) -> dict[str, int]:
        """Groups per status (for health and tests)."""
        t = self.table
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status))).all()
        return {row[0]: int(row[1]) for row in rows}
