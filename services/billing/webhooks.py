"""Stripe webhooks: verified by signature, recorded once, and acted on.

The gateway forwards the raw body and the `Stripe-Signature` header untouched; the SDK's
`Webhook.construct_event` checks the HMAC and the timestamp tolerance against the
endpoint's signing secret. Each event is kept once by its Stripe event id (Stripe
retries deliveries). `invoice.payment_failed` marks the tenant past due (the quota check
then answers 402 until an `invoice.paid` arrives); every other type is recorded only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import stripe

from dreamforge.db import Database, utcnow
from dreamforge.grpcio import FailedPrecondition, InvalidArgument
from services.billing.tables import BillingTables

PAST_DUE, OK = "past_due", "ok"


@dataclass(frozen=True)
class Recorded:
    event_id: str
    type: str
    duplicate: bool


class Webhooks:
    def __init__(self, db: Database, tables: BillingTables, secret: str) -> None:
        self.db = db
        self.tables = tables
        self.secret = secret

    def verify(self, payload: bytes, signature: str) -> dict[str, Any]:
        if not self.secret:
            raise FailedPrecondition("Stripe webhooks are not configured on this installation: set "
                                     "DREAMFORGE_STRIPE_WEBHOOK_SECRET to the endpoint's signing secret")
        try:
            text = payload.decode("utf-8")
            stripe.WebhookSignature.verify_header(text, signature, self.secret, stripe.Webhook.DEFAULT_TOLERANCE)
            event = json.loads(text)
        except stripe.SignatureVerificationError as exc:
            raise InvalidArgument(f"header `Stripe-Signature` does not verify: {exc.user_message or exc}") from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidArgument(f"request body is not a Stripe event (JSON): {exc}") from None
        if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(
                event.get("type"), str):
            raise InvalidArgument("request body is not a Stripe event: it needs string fields `id` and `type`")
        return event

    async def record(self, payload: bytes, signature: str) -> Recorded:
        event = self.verify(payload, signature)
        obj = (event.get("data") or {}).get("object") or {}
        obj = obj if isinstance(obj, dict) else {}
        customer = obj.get("customer") if isinstance(obj.get("customer"), str) else ""
        if obj.get("object") == "customer":
            customer = str(obj.get("id", ""))
        t = self.tables
        async with self.db.transaction() as conn:
            tenant = (await conn.execute(sa.select(t.customers.c.tenant_id)
                                         .where(t.customers.c.customer_id == customer))).scalar() if customer else None
            fresh = await self.db.insert_ignore(conn, t.webhooks, {
                "event_id": event["id"][:100], "type": event["type"][:100], "customer_id": (customer or "")[:100],
                "tenant_id": tenant or "", "object_id": str(obj.get("id", ""))[:100], "received_at": utcnow(),
                "payload": payload.decode("utf-8")})
            status = {"invoice.payment_failed": PAST_DUE, "invoice.paid": OK}.get(event["type"])
            if fresh and tenant and status:
                reason = f"Stripe invoice {obj.get('id', '')} payment failed" if status == PAST_DUE else ""
                row = {"tenant_id": tenant, "status": status, "reason": reason, "updated_at": utcnow()}
                if not await self.db.insert_ignore(conn, t.tenant_status, row):
                    await conn.execute(t.tenant_status.update().where(t.tenant_status.c.tenant_id == tenant)
                                       .values(**row))
        return Recorded(event["id"], event["type"], duplicate=not fresh)

    async def status(self, tenant: str) -> tuple[str, str]:
        t = self.tables.tenant_status
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(t.c.status, t.c.reason).where(t.c.tenant_id == tenant))).first()
        return (row[0], row[1]) if row else (OK, "")
