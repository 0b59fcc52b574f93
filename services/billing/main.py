"""Wires the billing service: ledger tables, the `usage.recorded` consumer, gRPC API."""

from __future__ import annotations

from dreamforge.events import USAGE_RECORDED
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import billing_pb2_grpc
from services.billing.grpc_api import BillingServicer
from services.billing.ledger import Ledger
from services.billing.tables import BillingTables


async def build(runtime: ServiceRuntime) -> Ledger:
    tables = BillingTables(runtime.db)
    runtime.migrations.extend(tables.migrations)
    ledger = Ledger(runtime.db, tables)

    async def on_usage(event, delivery):  # type: ignore[no-untyped-def]
        await ledger.record(event, delivery)

    runtime.bus.subscribe(USAGE_RECORDED, on_usage, durable="billing-ledger")
    runtime.add_servicer(billing_pb2_grpc.add_BillingServiceServicer_to_server, BillingServicer(ledger),
                         "dreamforge.v1.BillingService")
    return ledger
