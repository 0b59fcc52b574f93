"""The feedback service's own tables besides `outputs` (see outputs.py).

- `ratings`: one row per rating; a rater (API key) rates an output once per kind, enforced by a
  unique key, and a client idempotency key maps a retried submission to its first row;
- `assignments`: which output the queue handed to which rater (never twice);
- `reward_functions`: immutable versions of each tenant's reward functions;
- `data_settings`: a tenant's retention and queue overlap.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import Operations

from dreamforge.db import Database, Migration, UtcDateTime


class Tables:
    def __init__(self, db: Database) -> None:
        m = db.metadata
        self.ratings = sa.Table(
            db.table("ratings"), m,
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("tenant_id", sa.String(100), nullable=False, index=True),
            sa.Column("request_id", sa.String(100), nullable=False, index=True),
            sa.Column("rater_id", sa.String(64), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("value_json", sa.Text, nullable=False),
            sa.Column("other_request_id", sa.String(100), nullable=False, default=""),
            sa.Column("comment", sa.Text, nullable=False, default=""),
            sa.Column("revision", sa.Integer, nullable=False, default=1),
            sa.Column("idempotency_key", sa.String(200), nullable=True),
            sa.Column("created_at", UtcDateTime, nullable=False, index=True),
            sa.Column("updated_at", UtcDateTime, nullable=False),
            sa.UniqueConstraint("tenant_id", "rater_id", "request_id", "kind", name="uq_rating_once"),
            sa.UniqueConstraint("tenant_id", "rater_id", "idempotency_key", name="uq_rating_idempotency"),
        )
        self.assignments = sa.Table(
            db.table("assignments"), m,
            sa.Column("request_id", sa.String(100), primary_key=True),
            sa.Column("rater_id", sa.String(64), primary_key=True),
            sa.Column("tenant_id", sa.String(100), nullable=False, index=True),
            sa.Column("assigned_at", UtcDateTime, nullable=False),
        )
        self.reward_functions = sa.Table(
            db.table("reward_functions"), m,
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("version", sa.Integer, primary_key=True),
            sa.Column("tenant_id", sa.String(100), nullable=False, index=True),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("definition_json", sa.Text, nullable=False),
            sa.Column("active", sa.Boolean, nullable=False),
            sa.Column("created_by", sa.String(64), nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
        )
        self.data_settings = sa.Table(
            db.table("data_settings"), m,
            sa.Column("tenant_id", sa.String(100), primary_key=True),
            sa.Column("retention_days", sa.Integer, nullable=False),
            sa.Column("queue_overlap", sa.Integer, nullable=False),
        )
        self.migration = Migration(2, "ratings, assignments, reward functions, data settings", self._create)

    def _create(self, op: Operations) -> None:
        for table in (self.ratings, self.assignments, self.reward_functions, self.data_settings):
            table.create(op.get_bind(), checkfirst=True)
