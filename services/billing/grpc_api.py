"""`dreamforge.v1.BillingService` over gRPC: converts protobuf <-> domain objects and decides
whose data a caller may see. Every query is scoped to `caller.tenant_id`; only a key with
the `admin` scope (the operator) may read every tenant's report or change plans."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from dreamforge.db import utcnow
from dreamforge.grpcio import InvalidArgument, PermissionDenied, grpc_errors
from dreamforge.v1 import billing_pb2, billing_pb2_grpc, common_pb2
from services.billing.plan_store import Assignment, PlanStore
from services.billing.plans import SKILLS, Plan, quote
from services.billing.quotas import Quotas
from services.billing.reports import Report, Reports, Row, check_group_by, default_window, parse_time
from services.billing.webhooks import Webhooks

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def check_tenant(value: str, field: str) -> str:
    """Tenant ids are subject tokens (`t_<hex>`, `admin`): anything else names no tenant."""
    if not _TENANT.match(value):
        raise InvalidArgument(f"field `{field}` must be a tenant id (letters, digits, - and _), got {value[:100]!r}")
    return value


def is_operator(caller: common_pb2.Caller) -> bool:
    return "admin" in caller.scopes


def require_operator(caller: common_pb2.Caller, what: str) -> None:
    if not is_operator(caller):
        raise PermissionDenied(f"{what} needs a key with the `admin` scope")


class BillingServicer(billing_pb2_grpc.BillingServiceServicer):
    def __init__(self, reports: Reports, plans: PlanStore, quotas: Quotas, webhooks: Webhooks) -> None:
        self.reports = reports
        self.plans = plans
        self.quotas = quotas
        self.webhooks = webhooks

    @grpc_errors
    async def GetUsage(self, request: billing_pb2.GetUsageRequest, context: Context) -> billing_pb2.UsageSummary:
        tenant, now = request.caller.tenant_id, utcnow()
        start, end = default_window(parse_time(getattr(request, "from"), "from"),
                                    parse_time(request.to, "to"), now)
        report = await self.reports.report([tenant], ["skill"], start, end)
        plan = self.plans.plan_at(tenant, now)
        totals = report.totals
        return billing_pb2.UsageSummary(
            requests=totals.requests, images=totals.images, billable_images=totals.billable_images,
            input_tokens=totals.input_tokens, output_tokens=totals.output_tokens,
            cost_minor_units=totals.cost_minor_units, currency=report.currency,
            latency_p50_ms=totals.latency_p50_ms, latency_p95_ms=totals.latency_p95_ms,
            skills=[row_pb(row) for row in report.rows],
            plan=plan.id, month_images=await self.quotas.used(tenant, now.strftime("%Y-%m")),
            month_limit_images=plan.hard_limit_images, to=end.isoformat(), **{"from": start.isoformat()})

    @grpc_errors
    async def Report(self, request: billing_pb2.ReportRequest, context: Context) -> billing_pb2.ReportResponse:
        caller = request.caller
        if request.tenant and check_tenant(request.tenant, "tenant") != caller.tenant_id:
            require_operator(caller, "a report of another tenant")
        tenants = ([request.tenant] if request.tenant else None) if is_operator(caller) else [caller.tenant_id]
        group_by = check_group_by(list(request.group_by))
        report = await self.reports.report(tenants, group_by, parse_time(getattr(request, "from"), "from"),
                                           parse_time(request.to, "to"))
        return report_pb(report)

    @grpc_errors
    async def Quote(self, request: billing_pb2.QuoteRequest, context: Context) -> billing_pb2.QuoteResponse:
        plan = self.plans.get(request.plan) if request.plan else self.plans.plan_at(request.caller.tenant_id,
                                                                                    utcnow())
        result = quote(plan, dict(request.images_per_month))
        return billing_pb2.QuoteResponse(
            plan=plan.id, currency=plan.currency, total_minor_units=result.total_minor_units,
            total_images=result.total_images, hard_limit_images=plan.hard_limit_images,
            within_limit=result.within_limit,
            lines=[billing_pb2.QuoteLine(skill=x.skill, images=x.images, included_images=x.included_images,
                                         billable_images=x.billable_images,
                                         unit_price_minor_units=x.unit_price_minor_units,
                                         amount_minor_units=x.amount_minor_units) for x in result.lines])

    @grpc_errors
    async def CheckQuota(self, request: billing_pb2.CheckQuotaRequest,
                         context: Context) -> billing_pb2.CheckQuotaResponse:
        d = await self.quotas.check(request.caller.tenant_id, request.images or 1)
        return billing_pb2.CheckQuotaResponse(allowed=d.allowed, reason=d.reason, http_status=d.http_status,
                                              used_images=d.used_images, limit_images=d.limit_images,
                                              retry_after_s=d.retry_after_s)

    @grpc_errors
    async def ListPlans(self, request: billing_pb2.ListPlansRequest,
                        context: Context) -> billing_pb2.ListPlansResponse:
        return billing_pb2.ListPlansResponse(plans=[plan_pb(p) for p in self.plans.plans()])

    @grpc_errors
    async def GetPlan(self, request: billing_pb2.GetPlanRequest, context: Context) -> billing_pb2.Plan:
        return plan_pb(self.plans.get(request.id))

    @grpc_errors
    async def PutPlan(self, request: billing_pb2.PutPlanRequest, context: Context) -> billing_pb2.Plan:
        require_operator(request.caller, "changing plans")
        return plan_pb(await self.plans.put(plan_of(request.plan)))

    @grpc_errors
    async def GetTenantPlan(self, request: billing_pb2.GetTenantPlanRequest,
                            context: Context) -> billing_pb2.TenantPlan:
        tenant = check_tenant(request.tenant_id or request.caller.tenant_id, "tenant_id")
        if tenant != request.caller.tenant_id:
            require_operator(request.caller, "another tenant's plan")
        return tenant_plan_pb(tenant, self.plans.plan_at(tenant, utcnow()), self.plans.history(tenant))

    @grpc_errors
    async def AssignPlan(self, request: billing_pb2.AssignPlanRequest, context: Context) -> billing_pb2.TenantPlan:
        require_operator(request.caller, "assigning plans")
        check_tenant(request.tenant_id, "tenant_id")
        when = request.effective_from.ToDatetime(tzinfo=UTC) if request.HasField("effective_from") else None
        await self.plans.assign(request.tenant_id, request.plan, when, request.caller.key_id)
        tenant = request.tenant_id
        return tenant_plan_pb(tenant, self.plans.plan_at(tenant, utcnow()), self.plans.history(tenant))

    @grpc_errors
    async def RecordStripeWebhook(self, request: billing_pb2.StripeWebhookRequest,
                                  context: Context) -> billing_pb2.StripeWebhookResponse:
        recorded = await self.webhooks.record(request.payload, request.signature)
        return billing_pb2.StripeWebhookResponse(event_id=recorded.event_id, type=recorded.type,
                                                 duplicate=recorded.duplicate)


# -- conversions --------------------------------------------------------------------------------
def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def row_pb(row: Row) -> billing_pb2.ReportRow:
    return billing_pb2.ReportRow(
        group=row.group, requests=row.requests, images=row.images, billable_images=row.billable_images,
        input_tokens=row.input_tokens, output_tokens=row.output_tokens, cost_minor_units=row.cost_minor_units,
        latency_p50_ms=row.latency_p50_ms, latency_p95_ms=row.latency_p95_ms)


def report_pb(report: Report) -> billing_pb2.ReportResponse:
    return billing_pb2.ReportResponse(
        rows=[row_pb(r) for r in report.rows], totals=row_pb(report.totals), currency=report.currency,
        group_by=report.group_by, to=report.end.isoformat() if report.end else "",
        **{"from": report.start.isoformat() if report.start else ""})


def plan_pb(p: Plan) -> billing_pb2.Plan:
    return billing_pb2.Plan(id=p.id, name=p.name, currency=p.currency, included_images=p.included_images,
                            unit_price_minor_units=p.unit_price_minor_units, hard_limit_images=p.hard_limit_images,
                            limit_status=p.limit_status, description=p.description)


def plan_of(p: billing_pb2.Plan) -> Plan:
    return Plan(p.id, p.name, p.currency or "usd", dict(p.included_images), dict(p.unit_price_minor_units),
                p.hard_limit_images, p.limit_status or 429, p.description)


def tenant_plan_pb(tenant: str, current: Plan, history: list[Assignment]) -> billing_pb2.TenantPlan:
    return billing_pb2.TenantPlan(tenant_id=tenant, current=plan_pb(current), assignments=[
        billing_pb2.PlanAssignment(plan=a.plan_id, effective_from=ts(a.effective_from), assigned_at=ts(a.assigned_at),
                                   assigned_by=a.assigned_by) for a in history])


__all__ = ["SKILLS", "BillingServicer"]
