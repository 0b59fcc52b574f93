"""Wires the billing service: tables, plans, the priced ledger consuming `usage.recorded`,
reports, quotas (Redis counters reconciled from the ledger), the Stripe worker and webhooks,
and the gRPC API. Background tasks start once the database and NATS answer and stop
before the connections close."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from redis.asyncio import Redis

from dreamforge.events import USAGE_RECORDED
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import billing_pb2_grpc
from services.billing.grpc_api import BillingServicer
from services.billing.ledger import Ledger
from services.billing.plan_store import PlanStore
from services.billing.quotas import Quotas
from services.billing.reports import Reports, install_sqlite_functions
from services.billing.settings import BillingSettings
from services.billing.stripe_outbox import StripeOutbox
from services.billing.stripe_worker import StripeWorker, make_client
from services.billing.tables import BillingTables
from services.billing.webhooks import Webhooks

log = logging.getLogger("dreamforge.billing")


@dataclass
class Billing:
    """What `build` returns (`runtime.state`), for tests and tools."""

    ledger: Ledger
    plans: PlanStore
    reports: Reports
    quotas: Quotas
    stripe: StripeWorker
    outbox: StripeOutbox
    redis: Redis


async def build(runtime: ServiceRuntime) -> Billing:
    settings = runtime.settings_as(BillingSettings)
    tables = BillingTables(runtime.db)
    runtime.migrations.extend(tables.migrations)
    install_sqlite_functions(runtime.db.engine)
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
    plans = PlanStore(runtime.db, tables, settings.default_plan)
    outbox = StripeOutbox(runtime.db, tables)
    webhooks = Webhooks(runtime.db, tables, settings.stripe_webhook_secret)
    ledger = Ledger(runtime.db, tables, plans, outbox)
    quotas = Quotas(redis, runtime.db, tables, plans, ledger, webhooks)
    ledger.on_recorded = quotas.add
    worker = StripeWorker(settings, runtime.db, tables, outbox, make_client(settings))
    reports = Reports(runtime.db, tables)

    async def on_usage(event, delivery):  # type: ignore[no-untyped-def]
        await ledger.record(event, delivery)

    async def on_usage_batch(items):  # type: ignore[no-untyped-def]
        await ledger.record_batch(items)

    # One transaction per fetch of up to 256 events (the per-event handler is the fallback).
    runtime.bus.subscribe(USAGE_RECORDED, on_usage, durable="billing-ledger", batch=256, batch_handler=on_usage_batch)
    runtime.add_servicer(billing_pb2_grpc.add_BillingServiceServicer_to_server,
                         BillingServicer(reports, plans, quotas, webhooks), "dreamforge.v1.BillingService")
    tasks: list[asyncio.Task[None]] = []

    async def maintain() -> None:
        """Reload plans (other replicas' changes) and reset quota counters from the ledger."""
        while True:
            await asyncio.sleep(settings.quota_reconcile_s)
            try:
                await plans.load()
                await quotas.reconcile()
            except Exception as exc:
                log.warning("plan reload / quota reconcile failed; retrying", extra={"error": repr(exc)})

    async def start() -> None:
        await plans.load()
        with contextlib.suppress(Exception):  # Redis may come later: maintain() retries
            await quotas.reconcile()
        worker.start()
        tasks.append(asyncio.create_task(maintain(), name="billing-maintain"))
        log.info("billing started", extra={"stripe": "on" if worker.client else "off (no key)",
                                           "stripe_api_base": settings.stripe_api_base or "api.stripe.com"})

    async def stop() -> None:
        await worker.stop()
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await redis.aclose()

    runtime.on_start(start)
    runtime.on_stop(stop)
    return Billing(ledger, plans, reports, quotas, worker, outbox, redis)
