"""Usage and cost reports over the ledger, grouped by any of tenant, key, model, version,
alias, preview, skill, day and month.

One GROUP BY in the database does the sums (the ledger stores each row's price, so a
report is additions, never a re-pricing), and the totals are sums of the same rows, so
they reconcile with the ledger by construction. Latency p50/p95 are nearest-rank
percentiles (the smallest latency with at least p% of the group's rows at or below it):
`percentile_disc` on PostgreSQL, the same definition as an aggregate registered on SQLite,
so both give identical figures.

Cost of a report over 1M rows: on PostgreSQL the totals' scan runs alongside the grouped one
on a second connection; on SQLite (in-process, the aggregate is Python) there is one scan —
the totals are summed from the groups and their percentiles taken from the latencies the
groups' aggregates collected — and an every-tenant report does not walk the (tenant, time)
index row by row.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_

from dreamforge.db import Database
from dreamforge.grpcio import FailedPrecondition, InvalidArgument
from services.billing.tables import BillingTables

DIMENSIONS = ("tenant", "key", "model", "version", "alias", "preview", "skill", "day", "month")
#: Most rows one report may have (a finer grouping over a long window should be narrowed).
MAX_ROWS = 100_000
_PERCENTILES = "df_p50_p95"


@dataclass
class Row:
    group: dict[str, str]
    requests: int = 0
    images: int = 0
    billable_images: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_minor_units: int = 0
    latency_p50_ms: float = 0.0
    latency_p95_ms: float = 0.0


@dataclass
class Report:
    group_by: list[str]
    start: datetime | None
    end: datetime | None
    rows: list[Row] = field(default_factory=list)
    totals: Row = field(default_factory=lambda: Row({}))
    currency: str = "usd"


def parse_time(value: str, name: str) -> datetime | None:
    """An ISO date (`2026-12-01`, midnight UTC) or date-time; naive = UTC; empty = None."""
    text = value.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(f"query field `{name}` must be an ISO 8601 date (2026-12-01) or date-time "
                              f"(2026-12-01T10:00:00Z), got {value!r}") from None


def check_group_by(group_by: list[str]) -> list[str]:
    out: list[str] = []
    for item in group_by:
        for name in (part.strip() for part in item.split(",")):
            if not name:
                continue
            if name not in DIMENSIONS:
                raise InvalidArgument(f"query field `group_by`: unknown dimension {name!r}; use any of "
                                      f"{', '.join(DIMENSIONS)}")
            if name not in out:
                out.append(name)
    return out


def nearest_rank(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    return values[max(0, math.ceil(p * len(values)) - 1)]


class _Percentiles:
    """SQLite aggregate: 'p50 p95' of its inputs, nearest rank (= PostgreSQL's percentile_disc)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: float | None) -> None:
        if value is not None:
            self.values.append(value)

    def finalize(self) -> str:
        self.values.sort()
        return f"{nearest_rank(self.values, 0.5)!r} {nearest_rank(self.values, 0.95)!r}"


#: Sorted latencies of each group of a running SQLite report, by report token: the totals' percentiles
#: come from them, so the totals need no second scan. Written by the connection's thread, read after.
_COLLECTED: dict[str, list[list[float]]] = {}


class _CollectingPercentiles(_Percentiles):
    """`_Percentiles` that also hands its group's sorted values to the report (`token`)."""

    token = ""

    def step(self, value: float | None, token: str = "") -> None:  # type: ignore[override]
        self.token = token
        if value is not None:
            self.values.append(value)

    def finalize(self) -> str:
        out = super().finalize()
        _COLLECTED.setdefault(self.token, []).append(self.values)
        return out


def install_sqlite_functions(engine: AsyncEngine) -> None:
    """Register the percentile aggregate on every SQLite connection the pool opens."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine.sync_engine, "connect")
    def register(dbapi_conn: Any, _record: Any) -> None:
        raw = dbapi_conn._connection  # the aiosqlite connection: its own thread owns the sqlite3 handle
        await_(raw._execute(raw._conn.create_aggregate, _PERCENTILES, 1, _Percentiles))
        await_(raw._execute(raw._conn.create_aggregate, f"{_PERCENTILES}_collect", 2, _CollectingPercentiles))


class Reports:
    def __init__(self, db: Database, tables: BillingTables) -> None:
        self.db = db
        self.t = tables.ledger

    def _column(self, name: str, every_tenant: bool) -> sa.ColumnElement[Any]:
        t = self.t
        tenant: sa.ColumnElement[Any] = t.c.tenant_id
        if every_tenant and self.db.dialect == "sqlite":
            # Unary + (a no-op on text) keeps SQLite from walking the (tenant, time) index to group by tenant:
            # over every tenant that is a random row read per ledger row; a full scan and a sort are 2x faster.
            tenant = sa.literal_column(f"+{t.name}.tenant_id", sa.String)
        return {
            "tenant": tenant, "key": t.c.key_id, "model": t.c.model_id,
            "version": t.c.version, "alias": t.c.alias, "skill": t.c.skill, "day": t.c.day, "month": t.c.month,
            "preview": sa.case((t.c.is_preview, t.c.alias), else_=sa.literal("")),
        }[name].label(f"g_{name}")

    def _measures(self, token: str = "") -> list[sa.ColumnElement[Any]]:
        t = self.t
        sums = [sa.func.count().label("requests")] + [
            sa.func.coalesce(sa.func.sum(c), 0).label(c.name)
            for c in (t.c.images, t.c.billable_images, t.c.input_tokens, t.c.output_tokens, t.c.cost_minor_units)]
        if self.db.dialect == "postgresql":
            return [*sums, sa.func.percentile_disc(0.5).within_group(t.c.latency_ms).label("p50"),
                    sa.func.percentile_disc(0.95).within_group(t.c.latency_ms).label("p95")]
        if token:
            currencies = [sa.func.min(t.c.currency).label("cur_min"), sa.func.max(t.c.currency).label("cur_max")]
            return [*sums, sa.func.df_p50_p95_collect(t.c.latency_ms, token).label("pct"), *currencies]
        return [*sums, sa.func.df_p50_p95(t.c.latency_ms).label("pct")]

    def _row(self, group: dict[str, str], r: Any) -> Row:
        if self.db.dialect == "postgresql":
            p50, p95 = float(r.p50 or 0.0), float(r.p95 or 0.0)
        else:
            p50, p95 = (float(x) for x in str(r.pct or "0.0 0.0").split())
        return Row(group, int(r.requests), int(r.images), int(r.billable_images), int(r.input_tokens),
                   int(r.output_tokens), int(r.cost_minor_units), round(p50, 3), round(p95, 3))

    async def _all(self, query: sa.Select[Any]) -> list[Any]:
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def report(self, tenants: list[str] | None, group_by: list[str], start: datetime | None,
                     end: datetime | None) -> Report:
        """`tenants` None = every tenant (an operator's report)."""
        if start and end and end <= start:
            raise InvalidArgument("query field `to` must be later than `from`")
        t = self.t
        where: list[sa.ColumnElement[bool]] = []
        if tenants is not None:
            where.append(t.c.tenant_id.in_(tenants))
        if start is not None:
            where.append(t.c.occurred_at >= start)
        if end is not None:
            where.append(t.c.occurred_at < end)
        dims = [self._column(name, tenants is None) for name in group_by]
        currencies = [sa.func.min(t.c.currency).label("cur_min"), sa.func.max(t.c.currency).label("cur_max")]
        totals_query = sa.select(*self._measures(), *currencies).where(*where)
        report = Report(group_by, start, end)
        if dims and self.db.dialect == "postgresql":   # two server processes: the two scans run at once
            grouped = (sa.select(*dims, *self._measures()).where(*where).group_by(*dims).order_by(*dims)
                       .limit(MAX_ROWS + 1))
            rows, totals = await asyncio.gather(self._all(grouped), self._all(totals_query))
            total = totals[0]
        elif dims:   # SQLite: one scan; the totals are summed from the groups, their percentiles merged
            token = uuid.uuid4().hex
            grouped = (sa.select(*dims, *self._measures(token)).where(*where).group_by(*dims).order_by(*dims)
                       .limit(MAX_ROWS + 1))
            try:
                rows = await self._all(grouped)
            finally:
                collected = _COLLECTED.pop(token, [])
            total = _summed(rows, sorted(itertools.chain.from_iterable(collected)))
        else:
            rows, total = [], (await self._all(totals_query))[0]
        if len(rows) > MAX_ROWS:
            raise FailedPrecondition(f"the report has more than {MAX_ROWS} rows: narrow `from`/`to` or group "
                                     "by fewer dimensions")
        report.rows = [self._row({n: _text(r[i]) for i, n in enumerate(group_by)}, r) for r in rows]
        report.totals = self._row({}, total)
        report.currency = "usd" if total.cur_min is None else (
            total.cur_min if total.cur_min == total.cur_max else "mixed")
        return report


def _summed(rows: list[Any], latencies: list[float]) -> SimpleNamespace:
    """The totals row of a SQLite report from its groups: sums of sums, percentiles of every latency."""
    fields = ("requests", "images", "billable_images", "input_tokens", "output_tokens", "cost_minor_units")
    sums = {f: sum(int(getattr(r, f)) for r in rows) for f in fields}
    lows = [r.cur_min for r in rows if r.cur_min is not None]
    highs = [r.cur_max for r in rows if r.cur_max is not None]
    pct = f"{nearest_rank(latencies, 0.5)!r} {nearest_rank(latencies, 0.95)!r}"
    return SimpleNamespace(**sums, pct=pct, cur_min=min(lows) if lows else None, cur_max=max(highs) if highs else None)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def month_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def default_window(start: datetime | None, end: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """GET /v1/usage: the current calendar month (UTC) unless told otherwise."""
    return start or month_start(now), end or now + timedelta(seconds=1)
