"""Pricing plans as data, and the arithmetic every price comes from.

A plan is a currency, a monthly allowance of free images per skill, a price per billable
image per skill (integer minor units: cents for USD, never a float), and a hard limit of
images per month over all skills (0 = none) with the HTTP status the gateway answers
above it (402 = pay or upgrade, 429 = quota used up until next month).

The ledger prices each event as it arrives (`billable_images`): the images that exceed
what is left of the month's allowance for that skill. The quote uses the same function
over a whole month, so a quote and a report of the same usage agree to the cent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dreamforge.grpcio import InvalidArgument

SKILLS = ("caption", "query", "detect", "point", "chat")
_PLAN_ID = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
#: Largest image count a plan or quote may hold, and largest unit price (minor units): together their
#: products summed over every skill stay inside int64.
MAX_VALUE = 10**12
MAX_PRICE = 10**6


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    currency: str
    included_images: dict[str, int] = field(default_factory=dict)
    unit_price_minor_units: dict[str, int] = field(default_factory=dict)
    hard_limit_images: int = 0
    limit_status: int = 429
    description: str = ""

    def price(self, skill: str) -> int:
        return self.unit_price_minor_units.get(skill, 0)

    def included(self, skill: str) -> int:
        return self.included_images.get(skill, 0)


def billable(images: int, used_before: int, included: int) -> int:
    """Images of this event beyond what is left of the month's allowance."""
    left = max(0, included - used_before)
    return max(0, images - left)


#: The plans every installation starts with (an operator may change them or add others).
BUILTIN_PLANS: tuple[Plan, ...] = (
    Plan("free", "Free", "usd",
         included_images={"caption": 250, "query": 250, "detect": 200, "point": 200, "chat": 100},
         unit_price_minor_units={"caption": 2, "query": 2, "detect": 4, "point": 4, "chat": 5},
         hard_limit_images=1000, limit_status=402,
         description="A monthly allowance per skill and at most 1000 images a month; "
                     "above that calls are refused with 402 until the tenant upgrades."),
    Plan("payg", "Pay as you go", "usd",
         unit_price_minor_units={"caption": 2, "query": 2, "detect": 4, "point": 4, "chat": 5},
         hard_limit_images=0, limit_status=429,
         description="Every image billed at its skill's unit price; no monthly limit."),
    Plan("research", "Research", "usd",
         included_images={"caption": 2000, "query": 2000, "detect": 1000, "point": 1000, "chat": 500},
         unit_price_minor_units={"caption": 1, "query": 1, "detect": 2, "point": 2, "chat": 3},
         hard_limit_images=50_000, limit_status=429,
         description="Half-price images after a generous allowance, capped at 50,000 images a month."),
)


def check_plan(plan: Plan) -> Plan:
    """The plan when every field is sane; InvalidArgument naming the field otherwise."""
    if not _PLAN_ID.match(plan.id):
        raise InvalidArgument("plan field `id` must be 1-40 characters of a-z, 0-9, - and _, starting with a letter")
    if not plan.name.strip() or len(plan.name) > 100:
        raise InvalidArgument("plan field `name` must be 1-100 characters")
    if not re.fullmatch(r"[a-z]{3}", plan.currency):
        raise InvalidArgument(f"plan field `currency` must be a lower-case ISO 4217 code such as usd "
                              f"(got {plan.currency!r})")
    for name, values, top in (("included_images", plan.included_images, MAX_VALUE),
                              ("unit_price_minor_units", plan.unit_price_minor_units, MAX_PRICE)):
        for skill, value in values.items():
            if skill not in SKILLS:
                raise InvalidArgument(f"plan field `{name}`: unknown skill {skill!r}; skills are "
                                      f"{', '.join(SKILLS)}")
            if not 0 <= value <= top:
                raise InvalidArgument(f"plan field `{name}.{skill}` must be 0-{top} (got {value})")
    if not 0 <= plan.hard_limit_images <= MAX_VALUE:
        raise InvalidArgument(f"plan field `hard_limit_images` must be 0-{MAX_VALUE} (0 = no limit)")
    if plan.limit_status not in (402, 429):
        raise InvalidArgument(f"plan field `limit_status` must be 402 or 429 (got {plan.limit_status})")
    if len(plan.description) > 1000:
        raise InvalidArgument("plan field `description` is limited to 1000 characters")
    return plan


@dataclass(frozen=True)
class QuoteLine:
    skill: str
    images: int
    included_images: int
    billable_images: int
    unit_price_minor_units: int
    amount_minor_units: int


@dataclass(frozen=True)
class Quote:
    plan: Plan
    lines: list[QuoteLine]
    total_minor_units: int
    total_images: int

    @property
    def within_limit(self) -> bool:
        return not self.plan.hard_limit_images or self.total_images <= self.plan.hard_limit_images


def quote(plan: Plan, images_per_month: dict[str, int]) -> Quote:
    """The monthly price of `images_per_month` (skill -> images) under `plan`, line by line."""
    lines = []
    for skill, images in sorted(images_per_month.items(), key=lambda kv: SKILLS.index(kv[0])
                                if kv[0] in SKILLS else len(SKILLS)):
        if skill not in SKILLS:
            raise InvalidArgument(f"body field `images_per_month`: unknown skill {skill!r}; skills are "
                                  f"{', '.join(SKILLS)}")
        if not 0 <= images <= MAX_VALUE:
            raise InvalidArgument(f"body field `images_per_month.{skill}` must be 0-{MAX_VALUE} (got {images})")
        paid = billable(images, 0, plan.included(skill))
        lines.append(QuoteLine(skill, images, plan.included(skill), paid, plan.price(skill), paid * plan.price(skill)))
    return Quote(plan, lines, sum(x.amount_minor_units for x in lines), sum(x.images for x in lines))
