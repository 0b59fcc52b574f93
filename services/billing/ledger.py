"""The usage ledger: `usage.recorded` in, one priced row per event id out.

The event id is the primary key and the inbox records it in the same transaction as
everything the event changes — the ledger row, the month's usage counter (what the
allowance and the quota count) and the Stripe meter-event group it is billed in — so
redelivery, duplicate publishes and replays after the JetStream dedupe window never
count, price or bill a request twice, and a crash leaves either all of it or none.

Each row is priced under the plan in force at the event's own time (`occurred_at`):
billable images are those beyond what is left of the month's allowance for the skill,
and the cost is billable images times the skill's unit price, in integer minor units.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from dreamforge.bus import Delivery
from dreamforge.db import Database, utcnow
from dreamforge.v1 import events_pb2
from services.billing.plan_store import PlanStore
from services.billing.plans import billable
from services.billing.stripe_outbox import StripeOutbox
from services.billing.tables import BillingTables

#: Called after a new row committed: (tenant, month, images) — the quota counter's increment.
OnRecorded = Callable[[str, str, int], Awaitable[None]]


@dataclass(frozen=True)
class Priced:
    plan_id: str
    currency: str
    billable_images: int
    cost_minor_units: int


class Ledger:
    def __init__(self, db: Database, tables: BillingTables, plans: PlanStore, stripe: StripeOutbox,
                 on_recorded: OnRecorded | None = None) -> None:
        self.db = db
        self.tables = tables
        self.plans = plans
        self.stripe = stripe
        self.on_recorded = on_recorded

    async def record(self, event: events_pb2.UsageRecorded, delivery: Delivery) -> bool:
        """Write the priced ledger row for `event`; False when it was already recorded."""
        tenant = event.meta.tenant_id
        occurred = (event.meta.occurred_at.ToDatetime(tzinfo=UTC) if event.meta.HasField("occurred_at")
                    else utcnow())
        month, images = occurred.strftime("%Y-%m"), max(0, event.images)

        async def write(conn: AsyncConnection) -> None:
            priced = await self._price(conn, tenant, occurred, event.skill, images)
            group = None
            if priced.cost_minor_units > 0:
                group = await self.stripe.add(conn, tenant, event.skill, priced.billable_images, occurred,
                                              delivery.event_id)
            await conn.execute(self.tables.ledger.insert().values(
                event_id=delivery.event_id, tenant_id=tenant, request_id=event.request_id,
                key_id=event.key_id, model_id=event.model_id, version=event.version,
                alias=event.alias, is_preview=event.is_preview, skill=event.skill,
                images=images, input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                latency_ms=event.latency_ms, occurred_at=occurred, day=occurred.strftime("%Y-%m-%d"), month=month,
                plan_id=priced.plan_id, billable_images=priced.billable_images,
                cost_minor_units=priced.cost_minor_units, currency=priced.currency, stripe_group=group))

        fresh = await self.db.handle_once(delivery.event_id, delivery.subject, write)
        if fresh and self.on_recorded is not None:
            await self.on_recorded(tenant, month, images)
        return fresh

    async def _price(self, conn: AsyncConnection, tenant: str, occurred: datetime, skill: str,
                     images: int) -> Priced:
        plan = self.plans.plan_at(tenant, occurred)
        total = await self._add_month_usage(conn, tenant, occurred.strftime("%Y-%m"), skill, images)
        paid = billable(images, total - images, plan.included(skill))
        return Priced(plan.id, plan.currency, paid, paid * plan.price(skill))

    async def _add_month_usage(self, conn: AsyncConnection, tenant: str, month: str, skill: str, images: int) -> int:
        """Add `images` to the month's counter atomically; the new total (upsert ... RETURNING)."""
        t = self.tables.month_usage
        insert = (postgresql.insert(t) if self.db.dialect == "postgresql" else sqlite.insert(t)).values(
            tenant_id=tenant, month=month, skill=skill, images=images)
        stmt = insert.on_conflict_do_update(
            index_elements=[t.c.tenant_id, t.c.month, t.c.skill],
            set_={"images": t.c.images + insert.excluded.images}).returning(t.c.images)
        return int((await conn.execute(stmt)).scalar_one())

    async def month_images(self, month: str) -> dict[str, int]:
        """Images per tenant in `month`, from the ledger's counters (what the quota reconciles to)."""
        t = self.tables.month_usage
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.c.tenant_id, sa.func.sum(t.c.images))
                                       .where(t.c.month == month).group_by(t.c.tenant_id))).all()
        return {row[0]: int(row[1]) for row in rows}
