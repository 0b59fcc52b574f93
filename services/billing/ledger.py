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
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from dreamforge.bus import Delivery, PermanentError
from dreamforge.db import Database, utcnow
from dreamforge.v1 import events_pb2
from services.billing.plan_store import PlanStore
from services.billing.plans import billable
from services.billing.stripe_outbox import Addition, StripeOutbox
from services.billing.tables import BillingTables

#: Called after a new row committed: (tenant, month, images) — the quota counter's increment.
OnRecorded = Callable[[str, str, int], Awaitable[None]]


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
        return bool(await self.record_batch([(event, delivery)]))

    async def record_batch(self, items: list[tuple[events_pb2.UsageRecorded, Delivery]]) -> int:
        """Write the rows of every event not recorded before, in one transaction; how many were new.

        Events are priced in the order given; the month counters are added to with one
        upsert per (tenant, month, skill) whose RETURNING total says what was used before
        this batch, so two writers never hand out the same allowance twice.
        """
        fresh: dict[str, tuple[events_pb2.UsageRecorded, Delivery]] = {}
        for event, delivery in items:
            if not delivery.event_id or not event.meta.tenant_id:
                raise PermanentError("usage.recorded without an event id or tenant cannot be counted exactly once")
            fresh.setdefault(delivery.event_id, (event, delivery))
        inbox = self.db.inbox_table
        rows: list[dict[str, Any]] = []
        async with self.db.transaction() as conn:
            seen = set((await conn.execute(sa.select(inbox.c.event_id)
                                           .where(inbox.c.event_id.in_(list(fresh))))).scalars())
            new = [(e, d) for eid, (e, d) in fresh.items() if eid not in seen]
            if not new:
                return 0
            now = utcnow()
            await conn.execute(sa.insert(inbox), [{"event_id": d.event_id, "subject": d.subject, "processed_at": now}
                                                  for _, d in new])
            rows = [_row(e, d) for e, d in new]
            await self._price(conn, rows)
            await self._group_for_stripe(conn, rows)
            await conn.execute(sa.insert(self.tables.ledger), rows)
        if self.on_recorded is not None:
            for (tenant, month), images in _sum_by(rows, ("tenant_id", "month")).items():
                await self.on_recorded(tenant, month, images)
        return len(rows)

    async def _price(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Fill plan, billable images and cost of each row (in order)."""
        added = _sum_by(rows, ("tenant_id", "month", "skill"))
        totals = await self._add_month_usage(conn, added)
        used = {key: totals[key] - images for key, images in added.items()}
        for row in rows:
            plan = self.plans.plan_at(row["tenant_id"], row["occurred_at"])
            key = (row["tenant_id"], row["month"], row["skill"])
            paid = billable(row["images"], used[key], plan.included(row["skill"]))
            used[key] += row["images"]
            row.update(plan_id=plan.id, currency=plan.currency, billable_images=paid,
                       cost_minor_units=paid * plan.price(row["skill"]))

    async def _group_for_stripe(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Put each row with a cost into its tenant's and skill's open Stripe group."""
        mine: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for row in rows:
            if row["cost_minor_units"] > 0:
                mine.setdefault((row["tenant_id"], row["skill"]), []).append(row)
        if not mine:
            return
        groups = await self.stripe.add_many(conn, {
            key: Addition(sum(r["billable_images"] for r in group), max(r["occurred_at"] for r in group),
                          group[0]["event_id"]) for key, group in mine.items()})
        for key, group in mine.items():
            for row in group:
                row["stripe_group"] = groups[key]

    async def _add_month_usage(self, conn: AsyncConnection,
                               added: dict[tuple[Any, ...], int]) -> dict[tuple[Any, ...], int]:
        """Add images to the months' counters in one upsert; the new totals (upsert ... RETURNING), so two
        writers never hand out the same allowance."""
        t = self.tables.month_usage
        insert = (postgresql.insert(t) if self.db.dialect == "postgresql" else sqlite.insert(t)).values([
            {"tenant_id": k[0], "month": k[1], "skill": k[2], "images": added[k]} for k in sorted(added)])
        stmt = insert.on_conflict_do_update(
            index_elements=[t.c.tenant_id, t.c.month, t.c.skill],
            set_={"images": t.c.images + insert.excluded.images}).returning(t.c.tenant_id, t.c.month, t.c.skill,
                                                                           t.c.images)
        return {(r[0], r[1], r[2]): int(r[3]) for r in await conn.execute(stmt)}

    async def month_images(self, month: str) -> dict[str, int]:
        """Images per tenant in `month`, from the ledger's counters (what the quota reconciles to)."""
        t = self.tables.month_usage
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(t.c.tenant_id, sa.func.sum(t.c.images))
                                       .where(t.c.month == month).group_by(t.c.tenant_id))).all()
        return {row[0]: int(row[1]) for row in rows}


def _row(event: events_pb2.UsageRecorded, delivery: Delivery) -> dict[str, Any]:
    occurred = (event.meta.occurred_at.ToDatetime(tzinfo=UTC) if event.meta.HasField("occurred_at") else utcnow())
    return {"event_id": delivery.event_id, "tenant_id": event.meta.tenant_id, "request_id": event.request_id,
            "key_id": event.key_id, "model_id": event.model_id, "version": event.version, "alias": event.alias,
            "is_preview": event.is_preview, "skill": event.skill, "images": max(0, event.images),
            "input_tokens": event.input_tokens, "output_tokens": event.output_tokens, "latency_ms": event.latency_ms,
            "occurred_at": occurred, "day": occurred.strftime("%Y-%m-%d"), "month": occurred.strftime("%Y-%m"),
            "stripe_group": None}


def _sum_by(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple[Any, ...], int]:
    """Images of `rows` summed per `keys`, in first-seen order."""
    out: dict[tuple[Any, ...], int] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        out[key] = out.get(key, 0) + row["images"]
    return out
