"""The registry's schema: SQLAlchemy Core tables (prefixed `registry_`) and the ordered
migrations that create them, plus the transactional outbox table.

The `sa.Table` objects describe the *current* schema and are what queries use;
migration 1 spells out the *first* schema with alembic operations and must never
change (a later change is a new migration), so an existing database and a fresh one
end up identical. `tests/registry/test_store.py` checks the two agree.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import Operations

from dreamforge.db import Database, Migration, UtcDateTime
from dreamforge.outbox import Outbox

ID = sa.String(40)
TENANT = sa.String(100)
NAME = sa.String(63)


class RegistryTables:
    """All tables of one registry database; `migrations` is the list to apply, in order."""

    def __init__(self, db: Database) -> None:
        self.db = db
        t = db.table
        md = db.metadata
        self.models = sa.Table(
            t("models"), md,
            sa.Column("id", ID, primary_key=True),
            sa.Column("tenant_id", TENANT, nullable=False),
            sa.Column("name", NAME, nullable=False),
            sa.Column("base_checkpoint", sa.Text, nullable=False),
            sa.Column("parameter_count", sa.BigInteger, nullable=False),
            sa.Column("memory_bytes", sa.BigInteger, nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
            sa.Column("created_by", sa.String(100), nullable=False),
            sa.Column("latest_version", sa.Integer, nullable=False),
            sa.UniqueConstraint("tenant_id", "name", name=f"{t('models')}_tenant_name"),
        )
        self.model_tags = sa.Table(
            t("model_tags"), md,
            sa.Column("model_id", ID, sa.ForeignKey(f"{t('models')}.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("tag", NAME, primary_key=True),
            sa.Column("tenant_id", TENANT, nullable=False),
            sa.Index(f"{t('model_tags')}_tenant_tag", "tenant_id", "tag"),
        )
        self.versions = sa.Table(
            t("versions"), md,
            sa.Column("model_id", ID, sa.ForeignKey(f"{t('models')}.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("parent_version", sa.Integer, nullable=False),
            sa.Column("artifact_sha256", sa.String(64), nullable=False),
            sa.Column("artifact_bytes", sa.BigInteger, nullable=False),
            sa.Column("training_config_json", sa.Text, nullable=False),
            sa.Column("reward_function_json", sa.Text, nullable=False),
            sa.Column("eval_metrics_json", sa.Text, nullable=False),
            sa.Column("notes", sa.Text, nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
            sa.Column("created_by", sa.String(100), nullable=False),
        )
        self.aliases = sa.Table(
            t("aliases"), md,
            sa.Column("model_id", ID, sa.ForeignKey(f"{t('models')}.id", ondelete="CASCADE"), primary_key=True),
            sa.Column("name", NAME, primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("is_preview", sa.Boolean, nullable=False),
            sa.Column("updated_at", UtcDateTime, nullable=False),
            sa.Column("updated_by", sa.String(100), nullable=False),
        )
        self.alias_history = sa.Table(
            t("alias_history"), md,
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("model_id", ID, sa.ForeignKey(f"{t('models')}.id", ondelete="CASCADE"), nullable=False),
            sa.Column("alias", NAME, nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("previous_version", sa.Integer, nullable=False),
            sa.Column("action", sa.String(20), nullable=False),
            sa.Column("at", UtcDateTime, nullable=False),
            sa.Column("actor", sa.String(100), nullable=False),
            sa.Index(f"{t('alias_history')}_model_alias", "model_id", "alias", "seq"),
        )
        self.idempotency = sa.Table(
            t("idempotency"), md,
            sa.Column("tenant_id", TENANT, primary_key=True),
            sa.Column("key", sa.String(200), primary_key=True),
            sa.Column("operation", sa.String(40), nullable=False),
            sa.Column("fingerprint", sa.String(64), nullable=False),
            sa.Column("result", sa.String(100), nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
        )
        self.outbox = Outbox(db)
        self.migrations: list[Migration] = [
            Migration(1, "models_versions_aliases", self._v1),
            self.outbox.migration(2),
        ]

    def _v1(self, op: Operations) -> None:
        """The first schema, frozen: do not edit, add a migration instead."""
        t = self.db.table
        op.create_table(
            t("models"),
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("tenant_id", sa.String(100), nullable=False),
            sa.Column("name", sa.String(63), nullable=False),
            sa.Column("base_checkpoint", sa.Text, nullable=False),
            sa.Column("parameter_count", sa.BigInteger, nullable=False),
            sa.Column("memory_bytes", sa.BigInteger, nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
            sa.Column("created_by", sa.String(100), nullable=False),
            sa.Column("latest_version", sa.Integer, nullable=False),
            sa.UniqueConstraint("tenant_id", "name", name=f"{t('models')}_tenant_name"),
        )
        op.create_table(
            t("model_tags"),
            sa.Column("model_id", sa.String(40), sa.ForeignKey(f"{t('models')}.id", ondelete="CASCADE"),
                      primary_key=True),
            sa.Column("tag", sa.String(63), primary_key=True),
            sa.Column("tenant_id", sa.String(100), nullable=False),
        )
        op.create_index(f"{t('model_tags')}_tenant_tag", t("model_tags"), ["tenant_id", "tag"])
        op.create_table(
            t("versions"),
            sa.Column("model_id", sa.String(40), sa.ForeignKey(f"{t('models')}.id", ondelete="CASCADE"),
                      primary_key=True),
            sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("parent_version", sa.Integer, nullable=False),
            sa.Column("artifact_sha256", sa.String(64), nullable=False),
            sa.Column("artifact_bytes", sa.BigInteger, nullable=False),
            sa.Column("training_config_json", sa.Text, nullable=False),
            sa.Column("reward_function_json", sa.Text, nullable=False),
            sa.Column("eval_metrics_json", sa.Text, nullable=False),
            sa.Column("notes", sa.Text, nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
            sa.Column("created_by", sa.String(100), nullable=False),
        )
        op.create_table(
            t("aliases"),
            sa.Column("model_id", sa.String(40), sa.ForeignKey(f"{t('models')}.id", ondelete="CASCADE"),
                      primary_key=True),
            sa.Column("name", sa.String(63), primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("is_preview", sa.Boolean, nullable=False),
            sa.Column("updated_at", UtcDateTime, nullable=False),
            sa.Column("updated_by", sa.String(100), nullable=False),
        )
        op.create_table(
            t("alias_history"),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("model_id", sa.String(40), sa.ForeignKey(f"{t('models')}.id", ondelete="CASCADE"),
                      nullable=False),
            sa.Column("alias", sa.String(63), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("previous_version", sa.Integer, nullable=False),
            sa.Column("action", sa.String(20), nullable=False),
            sa.Column("at", UtcDateTime, nullable=False),
            sa.Column("actor", sa.String(100), nullable=False),
        )
        op.create_index(f"{t('alias_history')}_model_alias", t("alias_history"), ["model_id", "alias", "seq"])
        op.create_table(
            t("idempotency"),
            sa.Column("tenant_id", sa.String(100), primary_key=True),
            sa.Column("key", sa.String(200), primary_key=True),
            sa.Column("operation", sa.String(40), nullable=False),
            sa.Column("fingerprint", sa.String(64), nullable=False),
            sa.Column("result", sa.String(100), nullable=False),
            sa.Column("created_at", UtcDateTime, nullable=False),
        )
