"""The gateway's view of the billing service: REST schemas in, gRPC with the caller, schemas out;
and the quota gate every skill call passes (`QuotaGate.admit`).

The quota gate fails open: when billing does not answer within `timeout_s` the call is
served and the failure logged (at most once a minute), as the rate limiter does when Redis
is away — an outage of metering must not become an outage of serving. The ledger still
counts every served call, and the counters are reconciled from it.

Billing's "allowed" is kept for `cache_s` (default 1 s, as the API-key cache) with the
images it leaves the tenant (`limit - used`); calls within that time spend the allowance
here instead of each waiting for a `CheckQuota` round trip before inference, and a call the
allowance does not cover asks billing again. Refusals are never kept. What this can add to
the lag quotas already have (billing counts a call once its `usage.recorded` event is in
the ledger): calls served by *other* gateway replicas, an unpaid invoice or a new plan are
seen up to `cache_s` later. `cache_s=0` asks billing before every call.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from litestar import Request, Response

from dreamforge.grpcio import InvalidArgument, ServiceError
from dreamforge.v1 import billing_pb2, billing_pb2_grpc, common_pb2
from services.gateway.auth import to_caller
from services.gateway.errors import ErrorResponse, error_response
from services.gateway.keys import Principal
from services.gateway.schemas import billing as s

log = logging.getLogger("dreamforge.gateway.billing")

BillingStub = billing_pb2_grpc.BillingServiceStub


def billing_stub(ch: grpc.aio.Channel) -> BillingStub:
    return billing_pb2_grpc.BillingServiceStub(ch)  # type: ignore[no-untyped-call]


class QuotaExceeded(ServiceError):
    """Over the plan's hard limit (or an unpaid invoice): 402 or 429 on HTTP, RESOURCE_EXHAUSTED on gRPC."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, http_status: int, retry_after_s: int) -> None:
        super().__init__(message)
        self.http_status = http_status if http_status in (402, 429) else 429
        self.retry_after_s = retry_after_s


def quota_exceeded(request: Request[Any, Any, Any], exc: QuotaExceeded) -> Response[ErrorResponse]:
    """402 (pay or upgrade) or 429 (used up until next month, with `Retry-After`), saying which."""
    code = "payment_required" if exc.http_status == 402 else "quota_exceeded"
    headers = {"Retry-After": str(exc.retry_after_s)} if exc.http_status == 429 and exc.retry_after_s else None
    return error_response(request, exc.http_status, code, str(exc), headers)


@dataclass
class _Allowance:
    """What billing last allowed a tenant: until `expires` (monotonic), `images` more (None: no limit)."""

    expires: float
    images: int | None


class QuotaGate:
    #: Tenants whose allowance is kept at most (the expired ones are dropped first).
    MAX_TENANTS = 10_000

    def __init__(self, stub: billing_pb2_grpc.BillingServiceStub | None, timeout_s: float = 1.0,
                 cache_s: float = 1.0) -> None:
        self.stub = stub
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._last_warning = 0.0
        self._allowances: dict[str, _Allowance] = {}

    async def admit(self, caller: common_pb2.Caller, skill: str, images: int = 1) -> None:
        """Raise QuotaExceeded when the tenant may not use `images` more images now."""
        if self.stub is None:
            return
        images = max(1, images)
        if self._spend(caller.tenant_id, images):
            return
        try:
            reply = await self.stub.CheckQuota(billing_pb2.CheckQuotaRequest(caller=caller, skill=skill, images=images),
                                               timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            if time.monotonic() - self._last_warning > 60:
                self._last_warning = time.monotonic()
                log.warning("billing unavailable: quotas not enforced", extra={"error": exc.code().name})
            return
        if not reply.allowed:
            self._allowances.pop(caller.tenant_id, None)
            raise QuotaExceeded(reply.reason, reply.http_status, int(reply.retry_after_s))
        self._keep(caller.tenant_id, reply, images)

    def _spend(self, tenant: str, images: int) -> bool:
        """Take `images` from the tenant's unexpired allowance; False when it does not cover them."""
        allowance = self._allowances.get(tenant)
        if allowance is None or allowance.expires <= time.monotonic():
            return False
        if allowance.images is not None:
            if allowance.images < images:
                return False
            allowance.images -= images
        return True

    def _keep(self, tenant: str, reply: billing_pb2.CheckQuotaResponse, images: int) -> None:
        """Remember billing's "allowed", less the `images` this call takes (`limit_images` 0: no hard limit)."""
        if self.cache_s <= 0:
            return
        now = time.monotonic()
        if len(self._allowances) >= self.MAX_TENANTS:
            self._allowances = {t: a for t, a in self._allowances.items() if a.expires > now}
            if len(self._allowances) >= self.MAX_TENANTS:
                return
        left = None if reply.limit_images <= 0 else max(0, reply.limit_images - reply.used_images - images)
        self._allowances[tenant] = _Allowance(now + self.cache_s, left)


def _time(ts: Timestamp) -> datetime | None:
    return ts.ToDatetime(tzinfo=UTC) if ts.seconds or ts.nanos else None


def plan_out(p: billing_pb2.Plan) -> s.Plan:
    return s.Plan(id=p.id, name=p.name, currency=p.currency, included_images=dict(p.included_images),
                  unit_price_minor_units=dict(p.unit_price_minor_units), hard_limit_images=p.hard_limit_images,
                  limit_status=p.limit_status, description=p.description)


def row_out(r: billing_pb2.ReportRow) -> s.ReportRow:
    return s.ReportRow(group=dict(r.group), requests=r.requests, images=r.images, billable_images=r.billable_images,
                       input_tokens=r.input_tokens, output_tokens=r.output_tokens,
                       cost_minor_units=r.cost_minor_units, latency_p50_ms=r.latency_p50_ms,
                       latency_p95_ms=r.latency_p95_ms)


def tenant_plan_out(t: billing_pb2.TenantPlan) -> s.TenantPlan:
    return s.TenantPlan(tenant_id=t.tenant_id, current=plan_out(t.current), assignments=[
        s.Assignment(plan=a.plan, effective_from=_time(a.effective_from), assigned_at=_time(a.assigned_at),
                     assigned_by=a.assigned_by) for a in t.assignments])


MEASURES = ("requests", "images", "billable_images", "input_tokens", "output_tokens", "cost_minor_units",
            "latency_p50_ms", "latency_p95_ms")


def report_csv(report: s.Report) -> str:
    """RFC 4180: a header row, CRLF line ends, quoting where needed; dates as ISO 8601 (`2026-12-01`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([*report.group_by, *MEASURES, "currency"])
    for row in report.rows:
        writer.writerow([*(row.group.get(d, "") for d in report.group_by),
                         *(getattr(row, m) for m in MEASURES), report.currency])
    return out.getvalue()


class BillingClient:
    """Calls `BillingService` on behalf of an authenticated principal."""

    def __init__(self, stub: billing_pb2_grpc.BillingServiceStub | None, timeout_s: float = 30.0) -> None:
        self._stub = stub
        self.timeout_s = timeout_s

    @property
    def stub(self) -> billing_pb2_grpc.BillingServiceStub:
        if self._stub is None:
            from services.gateway.skills import Unavailable
            raise Unavailable("no billing service is configured on this gateway")
        return self._stub

    async def usage(self, who: Principal, start: str, end: str) -> s.Usage:
        r = await self.stub.GetUsage(billing_pb2.GetUsageRequest(caller=to_caller(who), to=end, **{"from": start}),
                                     timeout=self.timeout_s)
        return s.Usage(tenant_id=who.tenant_id, start=getattr(r, "from"), end=r.to, requests=r.requests,
                       images=r.images, billable_images=r.billable_images, input_tokens=r.input_tokens,
                       output_tokens=r.output_tokens, cost_minor_units=r.cost_minor_units, currency=r.currency,
                       plan=r.plan, month_images=r.month_images, month_limit_images=r.month_limit_images,
                       latency_p50_ms=r.latency_p50_ms, latency_p95_ms=r.latency_p95_ms,
                       skills=[row_out(x) for x in r.skills])

    async def report(self, who: Principal, group_by: list[str], start: str, end: str, tenant: str) -> s.Report:
        r = await self.stub.Report(billing_pb2.ReportRequest(caller=to_caller(who), group_by=group_by, to=end,
                                                             tenant=tenant, **{"from": start}),
                                   timeout=self.timeout_s)
        return s.Report(group_by=list(r.group_by), start=getattr(r, "from"), end=r.to, currency=r.currency,
                        rows=[row_out(x) for x in r.rows], totals=row_out(r.totals))

    async def quote(self, who: Principal, data: s.QuoteRequest) -> s.Quote:
        images = {str(k): v for k, v in data.images_per_month.items()}
        r = await self.stub.Quote(billing_pb2.QuoteRequest(caller=to_caller(who), plan=data.plan or "",
                                                           images_per_month=images), timeout=self.timeout_s)
        return s.Quote(plan=r.plan, currency=r.currency, total_minor_units=r.total_minor_units,
                       total_images=r.total_images, hard_limit_images=r.hard_limit_images,
                       within_limit=r.within_limit, lines=[
                           s.QuoteLine(skill=x.skill, images=x.images, included_images=x.included_images,
                                       billable_images=x.billable_images,
                                       unit_price_minor_units=x.unit_price_minor_units,
                                       amount_minor_units=x.amount_minor_units) for x in r.lines])

    async def plans(self, who: Principal) -> s.PlanList:
        r = await self.stub.ListPlans(billing_pb2.ListPlansRequest(caller=to_caller(who)), timeout=self.timeout_s)
        return s.PlanList([plan_out(p) for p in r.plans])

    async def plan(self, who: Principal, plan_id: str) -> s.Plan:
        return plan_out(await self.stub.GetPlan(billing_pb2.GetPlanRequest(caller=to_caller(who), id=plan_id),
                                                timeout=self.timeout_s))

    async def put_plan(self, who: Principal, plan_id: str, data: s.PlanBody) -> s.Plan:
        plan = billing_pb2.Plan(id=plan_id, name=data.name, currency=data.currency,
                                included_images={str(k): v for k, v in data.included_images.items()},
                                unit_price_minor_units={str(k): v for k, v in data.unit_price_minor_units.items()},
                                hard_limit_images=data.hard_limit_images, limit_status=data.limit_status,
                                description=data.description)
        return plan_out(await self.stub.PutPlan(billing_pb2.PutPlanRequest(caller=to_caller(who), plan=plan),
                                                timeout=self.timeout_s))

    async def tenant_plan(self, who: Principal, tenant_id: str) -> s.TenantPlan:
        return tenant_plan_out(await self.stub.GetTenantPlan(billing_pb2.GetTenantPlanRequest(
            caller=to_caller(who), tenant_id=tenant_id), timeout=self.timeout_s))

    async def assign_plan(self, who: Principal, tenant_id: str, data: s.AssignPlan) -> s.TenantPlan:
        request = billing_pb2.AssignPlanRequest(caller=to_caller(who), tenant_id=tenant_id, plan=data.plan)
        if data.effective_from is not None:
            when = data.effective_from if data.effective_from.tzinfo else data.effective_from.replace(tzinfo=UTC)
            try:
                request.effective_from.FromDatetime(when.astimezone(UTC))
            except (OverflowError, ValueError):
                raise InvalidArgument("body field `effective_from` is out of range") from None
        return tenant_plan_out(await self.stub.AssignPlan(request, timeout=self.timeout_s))

    async def stripe_webhook(self, payload: bytes, signature: str) -> s.WebhookReceived:
        r = await self.stub.RecordStripeWebhook(billing_pb2.StripeWebhookRequest(payload=payload,
                                                                                signature=signature),
                                                timeout=self.timeout_s)
        return s.WebhookReceived(received=True, event_id=r.event_id, type=r.type, duplicate=r.duplicate)
