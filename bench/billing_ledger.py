"""Billing: how fast the ledger ingests usage events, and how long a finance report over
a million ledger rows takes — on SQLite (the embedded default) and PostgreSQL.

ingest   N `usage.recorded` events are published to JetStream first; then the real billing
         service (its runtime, consumer, batch transactions, pricing, Stripe grouping, quota
         counters in Redis) is started and timed until the ledger holds all N.
report   `rows` ledger rows (20 tenants, 12 models x 3 versions, 5 skills, 90 days, random
         latencies) are bulk-loaded with the service's own schema; then `Reports.report` — the
         code behind GET /v1/usage/report — is timed for several groupings (every tenant, as the
         operator sees them), best of 3, including p50/p95 latency per group.

    python bench/billing_ledger.py [--events 20000] [--rows 1000000] [--backends sqlite,postgres]
    (--events 0 skips the ingest part, --rows 0 the report part)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import nats
import sqlalchemy as sa

from dreamforge.db import Database
from dreamforge.events import USAGE_RECORDED, new_meta
from dreamforge.infra import ensure_nats, ensure_redis, free_port, start_postgres
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import events_pb2
from services.billing.main import build
from services.billing.reports import Reports
from services.billing.settings import BillingSettings
from services.billing.tables import BillingTables

GROUPINGS = (["tenant"], ["tenant", "model", "version"], ["tenant", "skill", "day"], ["model", "preview", "month"],
             ["tenant", "model", "version", "preview", "skill", "month"])
SKILLS = ("caption", "query", "detect", "point", "chat")


async def ingest(events: int, database_url: str, work: Path) -> float:
    nats_server = ensure_nats(f"nats://127.0.0.1:{free_port()}", work / "nats")
    redis_server = ensure_redis(f"redis://127.0.0.1:{free_port()}/0", work / "redis")
    try:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        runtime_probe = ServiceRuntime("billing", BillingSettings(home=work, nats_url=nats_server.url))
        await runtime_probe.bus.connect()           # creates the streams
        await runtime_probe.bus.close()
        rng = random.Random(0)
        for i in range(events):
            tenant = f"t_{i % 7}"
            event = events_pb2.UsageRecorded(meta=new_meta(tenant, "bench", f"req_{i}:usage"), request_id=f"req_{i}",
                                             key_id="k", model_id=f"mdl_{i % 5}", version=1, alias="production",
                                             skill=rng.choice(SKILLS), images=1, input_tokens=40, output_tokens=12,
                                             latency_ms=rng.uniform(5, 300))
            await js.publish(USAGE_RECORDED.subject(tenant), event.SerializeToString(),
                             headers={"Nats-Msg-Id": event.meta.event_id})
        await nc.close()
        settings = BillingSettings(home=work, nats_url=nats_server.url, redis_url=redis_server.url,
                                   database_url=database_url, log_level="WARNING")
        runtime = ServiceRuntime("billing", settings, port=free_port())
        runtime.state = await build(runtime)
        task = asyncio.create_task(runtime.run(handle_signals=False))
        while not runtime.ready:  # noqa: ASYNC110 - migrated and connected: consumption starts now
            await asyncio.sleep(0.01)
        start = time.perf_counter()
        ledger = runtime.state.ledger.tables.ledger
        while True:
            await asyncio.sleep(0.05)
            async with runtime.db.engine.connect() as conn:
                if (await conn.execute(sa.select(sa.func.count()).select_from(ledger))).scalar() >= events:
                    break
        elapsed = time.perf_counter() - start
        runtime.request_stop()
        await task
        return events / elapsed
    finally:
        redis_server.stop()
        nats_server.stop()


def ledger_rows(n: int, seed: int = 1) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    start = datetime(2026, 9, 1, tzinfo=UTC)
    out = []
    for i in range(n):
        when = start + timedelta(seconds=rng.randrange(90 * 86400))
        model = rng.randrange(12)
        preview = rng.random() < 0.1
        images = 1 if rng.random() < 0.9 else 2
        out.append((f"e{i}", f"t_{rng.randrange(20)}", f"r{i}", f"k{rng.randrange(60)}", f"mdl_{model}",
                    1 + rng.randrange(3), "blue" if preview else "production", preview, rng.choice(SKILLS), images,
                    rng.randrange(10, 200), rng.randrange(1, 60), round(rng.lognormvariate(3.5, 0.6), 3), when,
                    when.strftime("%Y-%m-%d"), when.strftime("%Y-%m"), "payg", images, images * 2, "usd", None))
    return out


COLUMNS = ("event_id", "tenant_id", "request_id", "key_id", "model_id", "version", "alias", "is_preview", "skill",
           "images", "input_tokens", "output_tokens", "latency_ms", "occurred_at", "day", "month", "plan_id",
           "billable_images", "cost_minor_units", "currency", "stripe_group")


async def load(db: Database, tables: BillingTables, rows: list[tuple[object, ...]]) -> None:
    await db.migrate(tables.migrations)
    if db.dialect == "sqlite":
        path = db.url.split("///", 1)[1]
        with sqlite3.connect(path) as conn:
            conn.executemany(f"INSERT INTO billing_ledger ({', '.join(COLUMNS)}) VALUES "
                             f"({', '.join('?' * len(COLUMNS))})",
                             ((*r[:13], r[13].strftime("%Y-%m-%d %H:%M:%S.%f"), *r[14:]) for r in rows))  # type: ignore[attr-defined]
            conn.execute("ANALYZE")
    else:
        conn = await asyncpg.connect(db.url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.copy_records_to_table("billing_ledger", records=rows, columns=list(COLUMNS))
            await conn.execute("ANALYZE billing_ledger")
        finally:
            await conn.close()


async def report_times(db: Database, tables: BillingTables, backend: str) -> list[tuple[str, float, int, int]]:
    reports = Reports(db, tables)
    out = []
    for group_by in GROUPINGS:
        best, cpu, rows, total = float("inf"), float("inf"), 0, 0
        for _ in range(3):
            start, start_cpu = time.perf_counter(), time.process_time()
            report = await reports.report(None, list(group_by), None, None)
            best, cpu = min(best, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
            rows, total = len(report.rows), report.totals.requests
        assert total == sum(r.requests for r in report.rows)
        out.append((",".join(group_by), best, rows, total))
        # CPU of this process: SQLite's whole query (it runs in-process); for PostgreSQL only the client side.
        print(f"report  {backend:8s} group_by={out[-1][0]:45s} {rows:7,} rows  {best:6.2f} s wall  {cpu:5.2f} s cpu "
              f"(over {total:,} ledger rows; load average {os.getloadavg()[0]:.1f})", flush=True)
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()
    backends = args.backends.split(",")
    print(f"# billing ledger — {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
          f"{len(os.sched_getaffinity(0))} cores")
    work = Path(tempfile.mkdtemp(prefix="df-bench-billing-"))
    pg_dir = Path(tempfile.mkdtemp(prefix="df-bench-pg-"))
    pg = start_postgres(pg_dir) if "postgres" in backends else None
    try:
        urls = {"sqlite": lambda name: f"sqlite+aiosqlite:///{work / name}.db"}
        if pg is not None:
            admin = await asyncpg.connect(pg.url.replace("postgresql+asyncpg://", "postgresql://"))

            def pg_url(name: str) -> str:
                return pg.url.rsplit("/", 1)[0] + f"/{name}"

            for name in ("ingest", "report"):
                await admin.execute(f'CREATE DATABASE "{name}"')
            await admin.close()
            urls["postgres"] = pg_url
        for backend in backends if args.events else ():
            rate = await ingest(args.events, urls[backend]("ingest"), work / f"ingest-{backend}")
            print(f"ingest  {backend:8s} {args.events} events: {rate:,.0f} events/s", flush=True)
        rows = ledger_rows(args.rows) if args.rows else []
        for backend in backends if args.rows else ():
            db = Database(urls[backend]("report"), "billing")
            from services.billing.reports import install_sqlite_functions
            install_sqlite_functions(db.engine)
            started = time.perf_counter()
            tables = BillingTables(db)
            await load(db, tables, rows)
            print(f"load    {backend:8s} {args.rows:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
            await report_times(db, tables, backend)
            await db.close()
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(pg_dir, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
