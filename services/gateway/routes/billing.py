"""Billing routes: usage (own tenant), finance reports (JSON or CSV), the cost calculator, plans,
plan assignments and the Stripe webhook.

Scopes: usage, quotes and plans need `app`, `ml` or `finance`; reports and a tenant's plan need
`finance`; changing plans and assigning them needs `admin` (the operator, who alone may also
read another tenant's report). The webhook takes no API key: Stripe's signature is its
authentication, verified by the billing service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post, put
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import Parameter

from services.gateway.auth import PUBLIC, requires
from services.gateway.billing_client import BillingClient, report_csv
from services.gateway.keys import Principal
from services.gateway.openapi import BACKEND_STATUSES, error_responses
from services.gateway.routes.admin import SECURITY
from services.gateway.schemas import billing as s

USAGE = [requires("app", "ml", "finance")]
FINANCE = [requires("finance")]
ADMIN = [requires("admin")]
#: Every status a billing failure can become (the route's own input errors are derived by DocumentErrors).
BILLING_ERRORS = error_responses(*BACKEND_STATUSES)

Since = Annotated[str, Parameter(query="from", max_length=40, description=(
    "Start, inclusive: ISO 8601 date (`2026-12-01`, midnight UTC) or date-time"))]
Until = Annotated[str, Parameter(query="to", max_length=40, description="End, exclusive: ISO 8601 date or date-time")]
TenantPath = Annotated[str, Parameter(min_length=1, max_length=100, description="Tenant id")]
PlanPath = Annotated[str, Parameter(min_length=1, max_length=40, description="Plan id, e.g. `payg`")]


@dataclass
class CsvOrJson(Operation):
    """The report's 200 is JSON, or RFC 4180 CSV with `format=csv`."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            ok.content = {**(ok.content or {}), "text/csv": OpenAPIMediaType(schema=Schema(
                type=OpenAPIType.STRING, description="RFC 4180 CSV: a header row (the group_by dimensions, then the "
                                           "measures and currency), CRLF line ends, ISO 8601 dates"))}


class UsageController(Controller):
    path = "/v1/usage"
    tags = ["billing"]
    security = SECURITY

    @get("/", operation_id="getUsage", responses=BILLING_ERRORS, guards=USAGE,
         summary="The calling tenant's usage and cost (default: this calendar month, UTC)")
    async def usage(self, billing: BillingClient, principal: Principal, start: Since = "", end: Until = "") -> s.Usage:
        return await billing.usage(principal, start, end)

    @get("/report", operation_id="usageReport", responses=BILLING_ERRORS, guards=FINANCE,
         operation_class=CsvOrJson,
         summary="Usage and cost grouped for finance, as JSON or CSV",
         description="Rows grouped by any of `tenant, key, model, version, alias, preview, skill, day, month` "
                     "(comma-separated), with requests, images, billable images, tokens, cost (integer minor "
                     "units) and latency p50/p95 (nearest rank); `totals` are the sums of the same ledger rows. "
                     "A tenant sees only its own usage; an `admin` key sees every tenant (or `tenant=`).")
    async def report(self, billing: BillingClient, principal: Principal, start: Since = "", end: Until = "",
                     group_by: Annotated[str, Parameter(max_length=200, description=(
                         "Comma-separated dimensions, e.g. `tenant,day`"))] = "",
                     format: Annotated[Literal["json", "csv"], Parameter(description="json (default) or csv")]
                     = "json",
                     tenant: Annotated[str, Parameter(max_length=100, description=(
                         "admin keys only: one tenant's report"))] = "") -> Response[s.Report]:
        dims = [d.strip() for d in group_by.split(",") if d.strip()]
        report = await billing.report(principal, dims, start, end, tenant)
        if format == "csv":
            return Response(report_csv(report), media_type="text/csv; charset=utf-8",  # type: ignore[arg-type]
                            headers={"Content-Disposition": 'attachment; filename="dreamforge-usage.csv"'})
        return Response(report)


class BillingController(Controller):
    path = "/v1/billing"
    tags = ["billing"]
    security = SECURITY

    @post("/quote", operation_id="quote", responses=BILLING_ERRORS, guards=USAGE, status_code=200,
          summary="Cost calculator: the monthly price of images per skill under a plan, line by line")
    async def quote(self, billing: BillingClient, principal: Principal, data: s.QuoteRequest) -> s.Quote:
        return await billing.quote(principal, data)

    @get("/plans", operation_id="listPlans", responses=BILLING_ERRORS, guards=USAGE,
         summary="Every plan with its prices and allowances")
    async def plans(self, billing: BillingClient, principal: Principal) -> s.PlanList:
        return await billing.plans(principal)

    @get("/plans/{plan_id:str}", operation_id="getPlan", responses=BILLING_ERRORS, guards=USAGE, summary="One plan")
    async def plan(self, billing: BillingClient, principal: Principal, plan_id: PlanPath) -> s.Plan:
        return await billing.plan(principal, plan_id)

    @put("/plans/{plan_id:str}", operation_id="putPlan", responses=BILLING_ERRORS, guards=ADMIN,
         summary="Create or change a plan (ledger rows keep the prices they were charged)")
    async def put_plan(self, billing: BillingClient, principal: Principal, plan_id: PlanPath,
                       data: s.PlanBody) -> s.Plan:
        return await billing.put_plan(principal, plan_id, data)

    @get("/tenants/{tenant_id:str}/plan", operation_id="getTenantPlan", responses=BILLING_ERRORS, guards=FINANCE,
         summary="A tenant's current plan and its assignments (another tenant's: admin only)")
    async def tenant_plan(self, billing: BillingClient, principal: Principal, tenant_id: TenantPath) -> s.TenantPlan:
        return await billing.tenant_plan(principal, tenant_id)

    @put("/tenants/{tenant_id:str}/plan", operation_id="assignPlan", responses=BILLING_ERRORS, guards=ADMIN,
         summary="Put a tenant on a plan from a time on (now or later, never retroactively)")
    async def assign_plan(self, billing: BillingClient, principal: Principal, tenant_id: TenantPath,
                          data: s.AssignPlan) -> s.TenantPlan:
        return await billing.assign_plan(principal, tenant_id, data)

    @post("/stripe/webhook", operation_id="stripeWebhook", status_code=200, opt={PUBLIC: True}, security=[],
          responses=error_responses(400, 413, *BACKEND_STATUSES),
          summary="Stripe webhook endpoint: verified by its Stripe-Signature, recorded once",
          description="Point a Stripe webhook endpoint here and set DREAMFORGE_STRIPE_WEBHOOK_SECRET to its "
                      "signing secret. A body whose signature does not verify is a 400; an installation "
                      "without the secret answers 409.")
    async def stripe_webhook(self, request: Request[Any, Any, Any], billing: BillingClient,
                             stripe_signature: Annotated[str, Parameter(
                                 header="Stripe-Signature", max_length=2000,
                                 description="t=<timestamp>,v1=<signature>")] = "") -> s.WebhookReceived:
        return await billing.stripe_webhook(await request.body(), stripe_signature)


BILLING_ROUTES = [UsageController, BillingController]
