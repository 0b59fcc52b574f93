"""A tenant's reward functions: immutable, versioned JSON definitions, validated on save.

Saving under an existing id adds version n+1 (the old versions stay readable, so a model
version can always say exactly which reward it was trained with). The latest version of
every function saved with `active` scores incoming ratings; with none active the built-in
`DEFAULT` (human rating, pairwise preference, agreement with a correction) does.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dreamforge.db import Database, utcnow
from dreamforge.grpcio import AlreadyExists, InvalidArgument, NotFound
from dreamforge.rewards import RewardDefinitionError, RewardFunctionSpec, parse_reward_function
from services.feedback.paging import Page, page_window
from services.feedback.tables import Tables

DEFAULT_ID = "default"
DEFAULT_DEFINITION = {
    "description": "Built in: used while a tenant has no active reward function.",
    "terms": [
        {"metric": "human_rating", "weight": 1.0, "direction": "maximize"},
        {"metric": "pairwise_preference", "weight": 1.0, "direction": "maximize"},
        {"metric": "token_f1", "weight": 1.0, "direction": "maximize"},
    ],
}
MAX_NAME = 200


@dataclass(frozen=True)
class RewardFunctionRow:
    id: str
    version: int
    name: str
    definition_json: str
    active: bool
    created_by: str
    created_at: datetime | None

    @property
    def spec(self) -> RewardFunctionSpec:
        return parse_reward_function(self.definition_json)


DEFAULT = RewardFunctionRow(DEFAULT_ID, 0, "default", json.dumps(parse_reward_function(DEFAULT_DEFINITION).to_json()),
                            True, "", None)


def validate_definition(definition_json: str) -> str:
    """The normalised definition (defaults filled in); InvalidArgument naming the field otherwise."""
    try:
        return json.dumps(parse_reward_function(definition_json).to_json())
    except RewardDefinitionError as exc:
        raise InvalidArgument(f"definition.{exc.field}: {exc.message}" if exc.field != "definition"
                              else f"definition: {exc.message}") from None


class RewardFunctions:
    def __init__(self, db: Database, tables: Tables) -> None:
        self.db = db
        self.t = tables.reward_functions

    async def save(self, tenant_id: str, rf_id: str, name: str, definition_json: str, active: bool,
                   created_by: str) -> RewardFunctionRow:
        definition = validate_definition(definition_json)
        name = name.strip()
        if len(name) > MAX_NAME:
            raise InvalidArgument(f"name is {len(name)} characters; the limit is {MAX_NAME}")
        try:
            async with self.db.transaction() as conn:
                if rf_id:
                    latest = (await conn.execute(
                        sa.select(self.t.c.version, self.t.c.name).where(
                            self.t.c.id == rf_id, self.t.c.tenant_id == tenant_id)
                        .order_by(self.t.c.version.desc()).limit(1))).first()
                    if latest is None:
                        raise NotFound(f"no reward function {rf_id!r}: omit id to create one")
                    version, name = latest.version + 1, name or latest.name
                else:
                    if not name:
                        raise InvalidArgument("name is required to create a reward function")
                    rf_id, version = f"rf_{secrets.token_hex(8)}", 1
                row = RewardFunctionRow(rf_id, version, name, definition, active, created_by, utcnow())
                await conn.execute(self.t.insert().values(
                    id=row.id, version=row.version, tenant_id=tenant_id, name=row.name,
                    definition_json=row.definition_json, active=row.active, created_by=row.created_by,
                    created_at=row.created_at))
        except IntegrityError:
            raise AlreadyExists(f"reward function {rf_id!r} was saved concurrently; retry") from None
        return row

    async def get(self, tenant_id: str, rf_id: str, version: int = 0) -> RewardFunctionRow:
        if rf_id == DEFAULT_ID and version in (0, DEFAULT.version):
            return DEFAULT
        q = sa.select(self.t).where(self.t.c.id == rf_id, self.t.c.tenant_id == tenant_id)
        q = q.where(self.t.c.version == version) if version else q.order_by(self.t.c.version.desc()).limit(1)
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        if row is None:
            what = f"version {version} of reward function {rf_id!r}" if version else f"reward function {rf_id!r}"
            raise NotFound(f"no {what}")
        return _row(row)

    def _latest(self, tenant_id: str) -> sa.Select[tuple[object, ...]]:
        latest = (sa.select(self.t.c.id, sa.func.max(self.t.c.version).label("version"))
                  .where(self.t.c.tenant_id == tenant_id).group_by(self.t.c.id).subquery())
        return (sa.select(self.t).join(latest, sa.and_(self.t.c.id == latest.c.id,
                                                        self.t.c.version == latest.c.version))
                .order_by(self.t.c.created_at, self.t.c.id))

    async def list_latest(self, tenant_id: str, page_size: int, page_token: str) -> Page[RewardFunctionRow]:
        offset, limit = page_window(page_size, page_token)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(self._latest(tenant_id).offset(offset).limit(limit + 1))).all()
        return Page.of([_row(r) for r in rows], offset, limit)

    async def versions(self, tenant_id: str, rf_id: str, page_size: int, page_token: str) -> Page[RewardFunctionRow]:
        offset, limit = page_window(page_size, page_token)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(self.t).where(self.t.c.id == rf_id, self.t.c.tenant_id == tenant_id)
                .order_by(self.t.c.version).offset(offset).limit(limit + 1))).all()
        if not rows and offset == 0 and rf_id != DEFAULT_ID:
            raise NotFound(f"no reward function {rf_id!r}")
        return Page.of([_row(r) for r in rows] or ([DEFAULT] if rf_id == DEFAULT_ID else []), offset, limit)

    async def active(self, tenant_id: str) -> list[RewardFunctionRow]:
        """The functions that score new ratings: the latest version of each active one, else DEFAULT."""
        async with self.db.engine.connect() as conn:
            rows = [_row(r) for r in (await conn.execute(self._latest(tenant_id))).all()]
        return [r for r in rows if r.active] or [DEFAULT]


def _row(r: sa.Row[tuple[object, ...]]) -> RewardFunctionRow:
    m = r._mapping
    return RewardFunctionRow(str(m["id"]), int(m["version"]), str(m["name"]), str(m["definition_json"]),
                             bool(m["active"]), str(m["created_by"]), m["created_at"])
