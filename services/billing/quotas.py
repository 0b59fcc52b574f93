"""Quotas: may this tenant use `n` more images this month under its plan?

The count lives in Redis (`billing:quota:<tenant>:<YYYY-MM>`), so the check the gateway
makes before every skill call is one GET. The ledger increments it after each new row
commits; the periodic `reconcile` resets every counter of the month to the ledger's
own count (`billing_month_usage`), which is the truth: an increment lost to a crash
between commit and INCRBY, or to Redis being away, is repaired within
`quota_reconcile_s`. With Redis down the check reads the ledger directly.

A tenant whose last Stripe invoice failed is refused with 402 until it is paid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from redis.asyncio import Redis

from dreamforge.db import Database, utcnow
from services.billing.ledger import Ledger
from services.billing.plan_store import PlanStore
from services.billing.tables import BillingTables
from services.billing.webhooks import PAST_DUE, Webhooks

log = logging.getLogger("dreamforge.billing.quotas")
_TTL_S = 40 * 24 * 3600


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    reason: str = ""
    http_status: int = 0
    used_images: int = 0
    limit_images: int = 0
    retry_after_s: int = 0


def next_month(now: datetime) -> datetime:
    return datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)


class Quotas:
    def __init__(self, redis: Redis, db: Database, tables: BillingTables, plans: PlanStore, ledger: Ledger,
                 webhooks: Webhooks) -> None:
        self.redis = redis
        self.db = db
        self.tables = tables
        self.plans = plans
        self.ledger = ledger
        self.webhooks = webhooks

    @staticmethod
    def key(tenant: str, month: str) -> str:
        return f"billing:quota:{tenant}:{month}"

    async def add(self, tenant: str, month: str, images: int) -> None:
        """The ledger's hook: count `images` just recorded (best effort; `reconcile` repairs)."""
        try:
            key = self.key(tenant, month)
            await self.redis.incrby(key, images)
            await self.redis.expire(key, _TTL_S)
        except Exception as exc:
            log.warning("quota counter not updated; the next reconcile repairs it", extra={"error": repr(exc)})

    async def used(self, tenant: str, month: str) -> int:
        try:
            value = await self.redis.get(self.key(tenant, month))
            if value is not None:
                return int(value)
        except Exception as exc:
            log.warning("redis unavailable; counting from the ledger", extra={"error": repr(exc)})
        t = self.tables.month_usage
        async with self.db.engine.connect() as conn:
            total = (await conn.execute(sa.select(sa.func.coalesce(sa.func.sum(t.c.images), 0))
                                        .where(t.c.tenant_id == tenant, t.c.month == month))).scalar()
        return int(total or 0)

    async def check(self, tenant: str, images: int) -> QuotaDecision:
        now = utcnow()
        status, reason = await self.webhooks.status(tenant)
        if status == PAST_DUE:
            return QuotaDecision(False, f"tenant {tenant} has an unpaid invoice ({reason}); pay it to continue",
                                 402)
        plan = self.plans.plan_at(tenant, now)
        if not plan.hard_limit_images:
            return QuotaDecision(True)
        used = await self.used(tenant, now.strftime("%Y-%m"))
        if used + max(1, images) <= plan.hard_limit_images:
            return QuotaDecision(True, used_images=used, limit_images=plan.hard_limit_images)
        resets = next_month(now)
        wait = int((resets - now).total_seconds()) + 1
        action = "upgrade the plan to continue" if plan.limit_status == 402 else \
            f"the quota resets on {resets.date().isoformat()}"
        return QuotaDecision(
            False, f"monthly quota of the {plan.name} plan used up: {used} of {plan.hard_limit_images} images "
                   f"this month for tenant {tenant}; {action}",
            plan.limit_status, used, plan.hard_limit_images, wait)

    async def reconcile(self) -> int:
        """Reset this month's counters from the ledger; how many tenants were set."""
        month = utcnow().strftime("%Y-%m")
        totals = await self.ledger.month_images(month)
        async with self.redis.pipeline(transaction=False) as pipe:
            for tenant, images in totals.items():
                pipe.set(self.key(tenant, month), images, ex=_TTL_S)
            await pipe.execute()
        return len(totals)
