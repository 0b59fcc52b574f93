"""Sends the Stripe outbox to Stripe with the official SDK, retrying until Stripe accepts.

Each tenant is a Stripe customer (created once, with an idempotency key derived from the
tenant id, and remembered in `billing_stripe_customers`). Each sealed group becomes one
Billing meter event: `event_name` `<prefix>_<skill>_images`, `payload` {stripe_customer_id,
value = billable images}, `identifier` = the group id, sent with the group id as the
idempotency key. A failure (network, 429, 5xx, anything) leaves the group sealed with
`next_attempt_at` pushed back exponentially (0.5 s, 1 s, 2 s, ... up to
`stripe_retry_max_s`), persisted, so a restart resumes the same schedule. A crash after
Stripe accepted but before `mark_sent` re-sends the same identifier and idempotency key:
Stripe replays its first answer and counts the event once.

`stripe_api_base` points the SDK at a Stripe-compatible server (the tests' local one);
empty means api.stripe.com, so a real `sk_live_`/`sk_test_` key in the environment is
all it takes to bill for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, timedelta
from typing import Any

import sqlalchemy as sa
import stripe

from dreamforge.db import Database, utcnow
from services.billing.settings import BillingSettings
from services.billing.stripe_outbox import Group, StripeOutbox
from services.billing.tables import BillingTables

log = logging.getLogger("dreamforge.billing.stripe")

#: Stripe accepts meter events up to 35 days old; older usage is sent as of this age.
_MAX_AGE = timedelta(days=35) - timedelta(hours=1)


def make_client(settings: BillingSettings) -> stripe.StripeClient | None:
    """The SDK client, or None when no key is configured (usage then waits in the outbox)."""
    if not settings.stripe_api_key:
        return None
    base = settings.stripe_api_base.rstrip("/") or None
    addresses: Any = {"api": base, "meter_events": base} if base else {}
    return stripe.StripeClient(settings.stripe_api_key, base_addresses=addresses, max_network_retries=0)


class StripeWorker:
    def __init__(self, settings: BillingSettings, db: Database, tables: BillingTables, outbox: StripeOutbox,
                 client: stripe.StripeClient | None) -> None:
        self.settings = settings
        self.db = db
        self.customers = tables.customers
        self.outbox = outbox
        self.client = client
        self._task: asyncio.Task[None] | None = None

    async def customer_for(self, tenant: str) -> str:
        """The tenant's Stripe customer id, created on first need."""
        t = self.customers
        async with self.db.engine.connect() as conn:
            found = (await conn.execute(sa.select(t.c.customer_id).where(t.c.tenant_id == tenant))).scalar()
        if found:
            return str(found)
        assert self.client is not None
        customer = await self.client.v1.customers.create_async(
            params={"name": tenant, "metadata": {"dreamforge_tenant_id": tenant}},
            options={"idempotency_key": f"dreamforge-customer-{tenant}"})
        async with self.db.transaction() as conn:
            await self.db.insert_ignore(conn, t, {"tenant_id": tenant, "customer_id": customer.id,
                                                  "created_at": utcnow()})
        return str(customer.id)

    async def send(self, group: Group) -> None:
        assert self.client is not None
        customer = await self.customer_for(group.tenant_id)
        when = max(group.last_occurred_at, utcnow() - _MAX_AGE)
        await self.client.v1.billing.meter_events.create_async(
            params={"event_name": f"{self.settings.stripe_meter_event_prefix}_{group.skill}_images",
                    "identifier": group.id, "timestamp": int(when.astimezone(UTC).timestamp()),
                    "payload": {"stripe_customer_id": customer, "value": str(group.quantity)}},
            options={"idempotency_key": group.id})

    def backoff_s(self, attempts: int) -> float:
        return float(min(self.settings.stripe_retry_max_s, 0.5 * 2 ** min(attempts, 20)))

    async def run_once(self) -> int:
        """Seal what is due, send every due group once; how many were accepted."""
        await self.outbox.seal(self.settings.stripe_flush_s)
        if self.client is None:
            return 0
        sent = 0
        for group in await self.outbox.due():
            try:
                await self.send(group)
            except Exception as exc:  # every failure is retried: Stripe must end up with every group
                delay = self.backoff_s(group.attempts)
                log.warning("stripe meter event failed; will retry: %s", repr(exc)[:300], extra={
                    "group": group.id, "tenant_id": group.tenant_id, "attempt": group.attempts + 1,
                    "retry_in_s": delay, "error": repr(exc)[:500]})
                await self.outbox.mark_failed(group.id, repr(exc), delay)
                continue
            await self.outbox.mark_sent(group.id)
            sent += 1
        return sent

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="billing-stripe")

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("stripe worker pass failed; retrying")
            await asyncio.sleep(self.settings.stripe_poll_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
