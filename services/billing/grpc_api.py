"""BillingService over gRPC: usage totals from the ledger; pricing, reports, quotes and
quotas answer UNIMPLEMENTED until plans exist (no invented prices)."""

from __future__ import annotations

import grpc

from dreamforge.grpcio import pending
from dreamforge.v1 import billing_pb2, billing_pb2_grpc
from services.billing.ledger import Ledger


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def GetUsage(
        self, request: billing_pb2.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> billing_pb2.UsageSummary:
        """Counts from the ledger. Cost fields stay empty: pricing plans are not configured yet."""
        totals = await self.ledger.totals(request.caller.tenant_id)
        return billing_pb2.UsageSummary(requests=totals.requests, images=totals.images,
                                        input_tokens=totals.input_tokens, output_tokens=totals.output_tokens)

    Report = pending("usage reports (pricing plans)")
    Quote = pending("the cost calculator (pricing plans)")
    CheckQuota = pending("quotas (pricing plans)")
