"""The rater queue: hands each rater served outputs to rate.

- never the same output twice to one rater (an assignment row per (output, rater), and outputs
  the rater already rated are skipped);
- overlap: an output is handed to at most `queue_overlap` raters (the tenant's setting), so
  several raters see the same items and their agreement can be measured;
- sampling across model versions: the next item's (model, version) is drawn uniformly among the
  versions that still have open items, then the oldest open item of it is handed out, so a new
  version gets rated as soon as it serves, not after the backlog of the old one.
"""

from __future__ import annotations

import random
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dreamforge.db import Database, utcnow
from services.feedback.outputs import OutputStore
from services.feedback.tables import Tables


class RaterQueue:
    def __init__(self, db: Database, tables: Tables, outputs: OutputStore, rng: random.Random | None = None) -> None:
        self.db = db
        self.tables = tables
        self.o = outputs.outputs
        self.rng = rng or random.Random()

    def _open(self, tenant_id: str, rater_id: str, overlap: int, skill: str) -> Any:
        """Outputs still open to `rater_id`, as a WHERE clause on the outputs table."""
        a, r = self.tables.assignments, self.tables.ratings
        handed = sa.select(sa.func.count()).select_from(a).where(a.c.request_id == self.o.c.request_id)
        clause = sa.and_(
            self.o.c.tenant_id == tenant_id,
            ~sa.exists().where(a.c.request_id == self.o.c.request_id, a.c.rater_id == rater_id),
            ~sa.exists().where(r.c.request_id == self.o.c.request_id, r.c.rater_id == rater_id,
                               r.c.tenant_id == tenant_id),
            handed.scalar_subquery() < overlap,
        )
        return sa.and_(clause, self.o.c.skill == skill) if skill else clause

    async def next(self, tenant_id: str, rater_id: str, overlap: int, skill: str = "") -> tuple[Any, int]:
        """(the output handed to the rater or None, how many stay open to them after it)."""
        for _ in range(5):  # a concurrent hand-out of the same item to the same rater: draw again
            where = self._open(tenant_id, rater_id, overlap, skill)
            async with self.db.engine.connect() as conn:
                versions = (await conn.execute(sa.select(self.o.c.model_id, self.o.c.version).where(where)
                                               .distinct().order_by(self.o.c.model_id, self.o.c.version))).all()
                if not versions:
                    return None, 0
                model_id, version = self.rng.choice(versions)
                row = (await conn.execute(sa.select(self.o).where(
                    where, self.o.c.model_id == model_id, self.o.c.version == version)
                    .order_by(self.o.c.created_at, self.o.c.request_id).limit(1))).first()
                remaining = (await conn.execute(sa.select(sa.func.count()).select_from(self.o)
                                                .where(where))).scalar_one()
            if row is None:
                continue
            try:
                async with self.db.transaction() as conn:
                    await conn.execute(self.tables.assignments.insert().values(
                        request_id=row.request_id, rater_id=rater_id, tenant_id=tenant_id, assigned_at=utcnow()))
            except IntegrityError:
                continue
            return row, int(remaining) - 1
        return None, 0
