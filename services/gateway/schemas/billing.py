"""JSON of the billing routes: usage, finance reports, quotes, plans, plan assignments, webhooks.

Money is always an integer number of minor units of `currency` (cents for `usd`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

#: Largest count or price a body may carry (the billing service's own bound).
MAX_VALUE = 10**12
MAX_PRICE = 10**6
Count = Annotated[int, msgspec.Meta(ge=0, le=MAX_VALUE)]
Price = Annotated[int, msgspec.Meta(ge=0, le=MAX_PRICE)]
Skill = Literal["caption", "query", "detect", "point", "chat"]
PlanId = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9_-]{0,39}$", description="Plan id, e.g. `payg`",
                                     examples=["payg"])]
DIMENSIONS = ("tenant", "key", "model", "version", "alias", "preview", "skill", "day", "month")


class Usage(msgspec.Struct):
    """A tenant's usage over a window (default: the current calendar month, UTC)."""

    tenant_id: str
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    requests: int = 0
    images: int = 0
    billable_images: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_minor_units: int = 0
    currency: str = "usd"
    plan: str = ""
    month_images: Annotated[int, msgspec.Meta(description="Images this calendar month (what the quota counts)")] = 0
    month_limit_images: Annotated[int, msgspec.Meta(description="The plan's monthly hard limit; 0 = none")] = 0
    latency_p50_ms: Annotated[float, msgspec.Meta(description="Over the window's requests, timed at the gateway")] = 0.0
    latency_p95_ms: float = 0.0
    skills: Annotated[list[ReportRow], msgspec.Meta(
        description="The same figures per skill (`group`: {\"skill\": ...}), by skill name")] = []


class ReportRow(msgspec.Struct):
    group: Annotated[dict[str, str], msgspec.Meta(description="The row's value of each `group_by` dimension")]
    requests: int
    images: int
    billable_images: int
    input_tokens: int
    output_tokens: int
    cost_minor_units: int
    latency_p50_ms: float
    latency_p95_ms: float


class Report(msgspec.Struct):
    group_by: list[str]
    start: str = msgspec.field(name="from")
    end: str = msgspec.field(name="to")
    currency: str = "usd"
    rows: list[ReportRow] = []
    totals: ReportRow | None = None


class QuoteRequest(msgspec.Struct, forbid_unknown_fields=True):
    images_per_month: Annotated[dict[Skill, Count], msgspec.Meta(
        description="Images a month per skill", examples=[{"caption": 5000, "detect": 1200}])]
    plan: PlanId | None = None


class QuoteLine(msgspec.Struct):
    skill: str
    images: int
    included_images: int
    billable_images: int
    unit_price_minor_units: int
    amount_minor_units: int


class Quote(msgspec.Struct):
    plan: str
    currency: str
    lines: list[QuoteLine]
    total_minor_units: int
    total_images: int
    hard_limit_images: int
    within_limit: bool


class PlanBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    currency: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{3}$", description="ISO 4217, lower case")] = "usd"
    included_images: Annotated[dict[Skill, Count], msgspec.Meta(
        description="Free images per skill each month")] = {}
    unit_price_minor_units: Annotated[dict[Skill, Price], msgspec.Meta(
        description="Price of one billable image per skill, in minor units")] = {}
    hard_limit_images: Annotated[Count, msgspec.Meta(description="Images a month over all skills; 0 = none")] = 0
    limit_status: Annotated[Literal[402, 429], msgspec.Meta(
        description="What the gateway answers above the limit")] = 429
    description: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class Plan(msgspec.Struct):
    id: str
    name: str
    currency: str
    included_images: dict[str, int]
    unit_price_minor_units: dict[str, int]
    hard_limit_images: int
    limit_status: int
    description: str


class PlanList(msgspec.Struct):
    plans: list[Plan]


class AssignPlan(msgspec.Struct, forbid_unknown_fields=True):
    plan: PlanId
    effective_from: Annotated[datetime | None, msgspec.Meta(
        description="When the plan takes effect (ISO 8601, with time zone); absent = now; never in the past")] = None


class Assignment(msgspec.Struct):
    plan: str
    effective_from: datetime | None
    assigned_at: datetime | None
    assigned_by: str


class TenantPlan(msgspec.Struct):
    tenant_id: str
    current: Plan
    assignments: list[Assignment]


class WebhookReceived(msgspec.Struct):
    received: bool
    event_id: str
    type: str
    duplicate: bool
