"""Billing's tables: the usage ledger, one row per `usage.recorded` event id."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import Operations

from dreamforge.db import Database, Migration, UtcDateTime


class BillingTables:
    def __init__(self, db: Database) -> None:
        self.ledger = sa.Table(
            db.table("ledger"), db.metadata,
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
            sa.Index(f"{db.table('ledger')}_tenant_time", "tenant_id", "occurred_at"),
        )
        self.migrations = [Migration(1, "ledger", self._create)]

    def _create(self, op: Operations) -> None:
        self.ledger.create(op.get_bind(), checkfirst=True)
