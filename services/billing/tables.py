"""Billing's tables (prefixed `billing_`) and the migrations that create them.

- `ledger`: one row per `usage.recorded` event id, priced when it is written (plan, billable
  images, cost in minor units), with its UTC day and month for reports, and the Stripe
  meter-event group it was reported in.
- `month_usage`: images per tenant, month and skill: what the allowance and the quota count.
- `plans`, `plan_assignments`: plans as data; a tenant's plan is the assignment with the
  latest `effective_from` not after the event's time.
- `stripe_groups`: the Stripe outbox. Billable images accumulate in an open group per tenant
  and skill; the worker seals a group after `stripe_flush_s` and sends it as one meter event
  whose identifier is the group id (derived from the ledger event that opened it).
- `stripe_customers`, `stripe_webhooks`, `tenant_status`: the Stripe side of a tenant.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import Operations

from dreamforge.db import Database, Migration, UtcDateTime

TENANT = sa.String(100)


class BillingTables:
    def __init__(self, db: Database) -> None:
        t, md = db.table, db.metadata
        self.ledger = sa.Table(
            t("ledger"), md,
            sa.Column("event_id", sa.String(100), primary_key=True),
            sa.Column("tenant_id", sa.String(64), nullable=False),
            sa.Column("request_id", sa.String(100), nullable=False),
            sa.Column("key_id", sa.String(64), nullable=False),
            sa.Column("model_id", sa.String(64), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("alias", sa.String(100), nullable=False),
            sa.Column("is_preview", sa.Boolean, nullable=False),
            sa.Column("skill", sa.String(32), nullable=False),
            sa.Column("images", sa.Integer, nullable=False),
            sa.Column("input_tokens", sa.Integer, nullable=False),
            sa.Column("output_tokens", sa.Integer, nullable=False),
            sa.Column("latency_ms", sa.Float, nullable=False),
            sa.Column("occurred_at", UtcDateTime, nullable=False),
            sa.Column("day", sa.String(10), nullable=False, server_default=""),
            sa.Column("month", sa.String(7), nullable=False, server_default=""),
            sa.Column("plan_id", sa.String(40), nullable=False, server_default=""),
            sa.Column("billable_images", sa.Integer, nullable=False, server_default="0"),
            sa.Column("cost_minor_units", sa.BigInteger, nullable=False, server_default="0"),
            sa.Column("currency", sa.String(3), nullable=False, server_default="usd"),
            sa.Column("stripe_group", sa.String(100), nullable=True),
            sa.Index(f"{t('ledger')}_tenant_time", "tenant_id", "occurred_at"),
        )
        self.month_usage = sa.Table(
            t("month_usage"), md,
            sa.Column("tenant_id", TENANT, primary_key=True),
            sa.Column("month", sa.String(7), primary_key=True),
            sa.Column("skill", sa.String(32), primary_key=True),
            sa.Column("images", sa.BigInteger, nullable=False),
        )
        self.plans = sa.Table(
            t("plans"), md,
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("name", sa.String(100), nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("included_json", sa.Text, nullable=False),
            sa.Column("prices_json", sa.Text, nullable=False),
            sa.Column("hard_limit_images", sa.BigInteger, nullable=False),
            sa.Column("limit_status", sa.Integer, nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("updated_at", UtcDateTime, nullable=False),
        )
        self.assignments = sa.Table(
            t("plan_assignments"), md,
            sa.Column("tenant_id", TENANT, primary_key=True),
            sa.Column("effective_from", UtcDateTime, primary_key=True),
            sa.Column("plan_id", sa.String(40), nullable=False),
            sa.Column("assigned_at", UtcDateTime, nullable=False),
            sa.Column("assigned_by", sa.String(100), nullable=False),
        )
        self.stripe_groups = sa.Table(
            t("stripe_groups"), md,
            sa.Column("id", sa.String(100), primary_key=True),
            sa.Column("tenant_id", TENANT, nullable=False),
            sa.Column("skill", sa.String(32), nullable=False),
            sa.Column("status", sa.String(10), nullable=False),       # open | sealed | sent
            sa.Column("quantity", sa.BigInteger, nullable=False),
            sa.Column("opened_at", UtcDateTime, nullable=False),
            sa.Column("last_occurred_at", UtcDateTime, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
            sa.Column("next_attempt_at", UtcDateTime, nullable=True),
            sa.Column("last_error", sa.Text, nullable=True),
            sa.Column("sent_at", UtcDateTime, nullable=True),
            sa.Index(f"{t('stripe_groups')}_status", "status", "tenant_id", "skill"),
        )
        self.customers = sa.Table(
            t("stripe_customers"), md,
            sa.Column("tenant_id", TENANT, primary_key=True),
            sa.Column("customer_id", sa.String(100), nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
        )
        self.webhooks = sa.Table(
            t("stripe_webhooks"), md,
            sa.Column("event_id", sa.String(100), primary_key=True),
            sa.Column("type", sa.String(100), nullable=False),
            sa.Column("customer_id", sa.String(100), nullable=False),
            sa.Column("tenant_id", TENANT, nullable=False),
            sa.Column("object_id", sa.String(100), nullable=False),
            sa.Column("received_at", UtcDateTime, nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
        )
        self.tenant_status = sa.Table(
            t("tenant_status"), md,
            sa.Column("tenant_id", TENANT, primary_key=True),
            sa.Column("status", sa.String(20), nullable=False),      # ok | past_due
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("updated_at", UtcDateTime, nullable=False),
        )
        self.migrations = [Migration(1, "ledger", self._create_ledger),
                           Migration(2, "pricing, quotas and stripe", self._pricing)]

    def _create_ledger(self, op: Operations) -> None:
        self.ledger.create(op.get_bind(), checkfirst=True)

    def _pricing(self, op: Operations) -> None:
        """Price columns on a ledger made by migration 1 of an earlier release, and the new tables."""
        bind = op.get_bind()
        present = {c["name"] for c in sa.inspect(bind).get_columns(self.ledger.name)}
        for column in self.ledger.columns:
            if column.name not in present:
                op.add_column(self.ledger.name, sa.Column(column.name, column.type, nullable=column.nullable,
                                                         server_default=column.server_default))
        if "day" not in present:
            bind.execute(self.ledger.update().values(
                day=sa.func.substr(sa.cast(self.ledger.c.occurred_at, sa.String), 1, 10),
                month=sa.func.substr(sa.cast(self.ledger.c.occurred_at, sa.String), 1, 7)))
        for table in (self.month_usage, self.plans, self.assignments, self.stripe_groups, self.customers,
                      self.webhooks, self.tenant_status):
            table.create(bind, checkfirst=True)
