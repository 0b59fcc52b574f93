"""Plans and which tenant is on which, stored in the database and held in memory.

The ledger asks "which plan did tenant T have at time X" for every event, so the
catalogue and the assignments are cached here: loaded at start, updated by every write
made through this process, and reloaded by the service's periodic task (so a second
billing replica sees a change within `quota_reconcile_s`).

Plan changes are never retroactive: an assignment takes effect at its `effective_from`,
which may not lie in the past, and every ledger row keeps the plan and the price it was
charged with when it was written.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from dreamforge.db import Database, utcnow
from dreamforge.grpcio import InvalidArgument, NotFound
from services.billing.plans import BUILTIN_PLANS, Plan, check_plan
from services.billing.tables import BillingTables

#: How far in the past an assignment's `effective_from` may be (clock skew between the caller and us).
_SKEW = timedelta(seconds=60)


@dataclass(frozen=True)
class Assignment:
    tenant_id: str
    plan_id: str
    effective_from: datetime
    assigned_at: datetime
    assigned_by: str


class PlanStore:
    def __init__(self, db: Database, tables: BillingTables, default_plan: str) -> None:
        self.db = db
        self.tables = tables
        self.default_plan = default_plan
        self._plans: dict[str, Plan] = {p.id: p for p in BUILTIN_PLANS}
        self._assignments: dict[str, list[Assignment]] = {}   # tenant -> sorted by effective_from

    async def load(self) -> None:
        """Seed the built-in plans on first start, then read everything into memory."""
        t = self.tables
        async with self.db.transaction() as conn:
            for plan in BUILTIN_PLANS:
                await self.db.insert_ignore(conn, t.plans, _plan_row(plan))
            plans = {row.id: _plan_of(row) for row in await conn.execute(sa.select(t.plans))}
            rows = (await conn.execute(sa.select(t.assignments).order_by(t.assignments.c.effective_from))).all()
        assignments: dict[str, list[Assignment]] = {}
        for row in rows:
            assignments.setdefault(row.tenant_id, []).append(Assignment(
                row.tenant_id, row.plan_id, row.effective_from, row.assigned_at, row.assigned_by))
        self._plans, self._assignments = plans, assignments

    # -- reading ------------------------------------------------------------------------------
    def plans(self) -> list[Plan]:
        return sorted(self._plans.values(), key=lambda p: p.id)

    def get(self, plan_id: str) -> Plan:
        plan = self._plans.get(plan_id)
        if plan is None:
            raise NotFound(f"plan {plan_id!r} not found; plans: {', '.join(sorted(self._plans))}")
        return plan

    def plan_at(self, tenant_id: str, when: datetime) -> Plan:
        """The plan in force for `tenant_id` at `when` (the default plan before any assignment)."""
        history = self._assignments.get(tenant_id, [])
        i = bisect.bisect_right([a.effective_from for a in history], when)
        plan_id = history[i - 1].plan_id if i else self.default_plan
        return self._plans.get(plan_id) or self._plans[BUILTIN_PLANS[1].id]

    def history(self, tenant_id: str) -> list[Assignment]:
        return list(reversed(self._assignments.get(tenant_id, [])))

    # -- writing ------------------------------------------------------------------------------
    async def put(self, plan: Plan) -> Plan:
        """Create or replace a plan. Rows already in the ledger keep the prices they were charged."""
        check_plan(plan)
        row = _plan_row(plan)
        async with self.db.transaction() as conn:
            if not await self.db.insert_ignore(conn, self.tables.plans, row):
                await conn.execute(self.tables.plans.update().where(self.tables.plans.c.id == plan.id).values(**row))
        self._plans[plan.id] = plan
        return plan

    async def assign(self, tenant_id: str, plan_id: str, effective_from: datetime | None, by: str) -> Assignment:
        self.get(plan_id)
        now = utcnow()
        when = effective_from or now
        if when < now - _SKEW:
            raise InvalidArgument(f"body field `effective_from` ({when.isoformat()}) is in the past: plan changes "
                                  "take effect from now or later, never retroactively")
        assignment = Assignment(tenant_id, plan_id, when, now, by)
        async with self.db.transaction() as conn:
            table = self.tables.assignments
            await conn.execute(table.delete().where(table.c.tenant_id == tenant_id, table.c.effective_from == when))
            await conn.execute(table.insert().values(tenant_id=tenant_id, plan_id=plan_id, effective_from=when,
                                                     assigned_at=now, assigned_by=by))
        history = [a for a in self._assignments.get(tenant_id, []) if a.effective_from != when]
        self._assignments[tenant_id] = sorted([*history, assignment], key=lambda a: a.effective_from)
        return assignment


def _plan_row(plan: Plan) -> dict[str, object]:
    return {"id": plan.id, "name": plan.name, "currency": plan.currency,
            "included_json": json.dumps(plan.included_images, sort_keys=True),
            "prices_json": json.dumps(plan.unit_price_minor_units, sort_keys=True),
            "hard_limit_images": plan.hard_limit_images, "limit_status": plan.limit_status,
            "description": plan.description, "updated_at": utcnow()}


def _plan_of(row: sa.Row[object]) -> Plan:
    return Plan(row.id, row.name, row.currency, json.loads(row.included_json), json.loads(row.prices_json),
                int(row.hard_limit_images), int(row.limit_status), row.description)
