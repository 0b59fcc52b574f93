"""The trainer's tables (prefixed `trainer_`): jobs, their per-step progress, and policies.

The reward buffer's table lives in `buffer.py`; the outbox's in `dreamforge.outbox`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import Operations

from dreamforge.db import Database, Migration, UtcDateTime
from dreamforge.outbox import Outbox


class TrainerTables:
    def __init__(self, db: Database) -> None:
        self.db = db
        t = db.table
        self.jobs = sa.Table(
            t("jobs"), db.metadata,
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("tenant_id", sa.String(100), nullable=False),
            sa.Column("model", sa.String(100), nullable=False),       # the name the caller used
            sa.Column("model_id", sa.String(64), nullable=False),
            sa.Column("base_version", sa.Integer, nullable=False),
            sa.Column("method", sa.String(8), nullable=False),
            sa.Column("config_json", sa.Text, nullable=False),
            sa.Column("reward_function_id", sa.String(100), nullable=False),
            sa.Column("reward_function_version", sa.Integer, nullable=False),
            sa.Column("reward_function_json", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("trigger", sa.String(16), nullable=False),
            sa.Column("result_version", sa.Integer, nullable=False),
            sa.Column("promoted", sa.Boolean, nullable=False),
            sa.Column("eval_before_json", sa.Text, nullable=False),
            sa.Column("eval_after_json", sa.Text, nullable=False),
            sa.Column("gate_json", sa.Text, nullable=False),
            sa.Column("idempotency_key", sa.String(200), nullable=True),
            sa.Column("worker_pid", sa.Integer, nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
            sa.Column("updated_at", UtcDateTime, nullable=False),
            sa.UniqueConstraint("tenant_id", "idempotency_key", name=f"{t('jobs')}_idem"),
            sa.Index(f"{t('jobs')}_by_status", "status", "created_at"),
            sa.Index(f"{t('jobs')}_by_tenant", "tenant_id", "created_at"),
        )
        self.progress = sa.Table(
            t("progress"), db.metadata,
            sa.Column("job_id", sa.String(40), primary_key=True),
            sa.Column("step", sa.Integer, primary_key=True),
            sa.Column("payload", sa.LargeBinary, nullable=False),     # events_pb2.TrainingProgress
        )
        self.policies = sa.Table(
            t("policies"), db.metadata,
            sa.Column("tenant_id", sa.String(100), primary_key=True),
            sa.Column("model_id", sa.String(64), primary_key=True),
            sa.Column("model", sa.String(100), nullable=False),
            sa.Column("policy", sa.LargeBinary, nullable=False),      # trainer_pb2.TrainingPolicy
            sa.Column("last_triggered_at", UtcDateTime, nullable=True),
            sa.Column("updated_at", UtcDateTime, nullable=False),
        )
        self.outbox = Outbox(db)
        self.migrations = [Migration(10, "jobs", self._create), self.outbox.migration(11)]

    def _create(self, op: Operations) -> None:
        conn = op.get_bind()
        for table in (self.jobs, self.progress, self.policies):
            table.create(conn, checkfirst=True)
