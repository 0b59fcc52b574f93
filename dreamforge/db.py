"""Async SQL storage shared by the services: engine, migrations, and the inbox.

The embedded default is one SQLite file per service (WAL mode, so readers don't
block the writer); a `postgresql+asyncpg://` URL puts every service on PostgreSQL,
each with its own table prefix. Both are tested.

Migrations are plain ordered functions that receive alembic's `Operations` object:
the portable DDL of alembic (`op.create_table`, `op.add_column`, batch mode on
SQLite) without its file-based environment. Applied ids are kept in
`<service>_migrations`, so a restart applies only what is new.

The inbox makes event handlers idempotent: a handler records the event id in
`<service>_inbox` in the same transaction as its effect, and a redelivered event
finds its id already there and is skipped.

`write` (and `read`) run a short synchronous transaction for a hot path. With aiosqlite every
statement of an async transaction is a round trip to its thread (begin, statement, commit,
the connection's reset): 0.78 ms p50 for a two-row insert on an idle 2-core machine, against
0.20 ms for the same transaction on a synchronous connection in one worker-thread hop. So on
SQLite `write` uses a second, synchronous engine on the same file (WAL: the two engines'
writers take turns on SQLite's lock, with the same busy timeout); on PostgreSQL it runs
through the async engine, whose driver has no thread to hop to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

log = logging.getLogger("dreamforge.db")
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which drops tzinfo) and PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


@dataclass(frozen=True)
class Migration:
    id: int
    name: str
    up: Callable[[Operations], None]


class Database:
    """An async engine plus the service's table prefix and migrations."""

    def __init__(self, url: str, service: str) -> None:
        self.url = url
        self.service = service
        self.metadata = sa.MetaData()
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(url, connect_args={"timeout": 30})
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            #: For `write`: the same file through the synchronous driver (an in-memory database
            #: would be another database, so it has none).
            self._sync_engine: sa.Engine | None = None
            if path and path != ":memory:" and "mode=memory" not in url:
                self._sync_engine = sa.create_engine(
                    self.engine.url.set(drivername="sqlite+pysqlite"), connect_args={"timeout": 30})
                event.listen(self._sync_engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
            self._sync_engine = None
        self._migrations = sa.Table(
            f"{service}_migrations", self.metadata,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("applied_at", UtcDateTime, nullable=False),
        )
        self.inbox_table = sa.Table(
            f"{service}_inbox", self.metadata,
            sa.Column("event_id", sa.String(100), primary_key=True),
            sa.Column("subject", sa.String(300), nullable=False),
            sa.Column("processed_at", UtcDateTime, nullable=False),
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def table(self, name: str) -> str:
        """The prefixed table name for this service (`registry_models`, ...)."""
        return f"{self.service}_{name}"

    async def migrate(self, migrations: Sequence[Migration]) -> list[int]:
        """Apply the migrations not applied yet, each in its own transaction."""
        ids = [m.id for m in migrations]
        if ids != sorted(set(ids)):
            raise ValueError("migration ids must be unique and ascending")
        async with self.engine.begin() as conn:
            await conn.run_sync(lambda c: self.metadata.create_all(c, tables=[self._migrations, self.inbox_table]))
            done = set((await conn.execute(sa.select(self._migrations.c.id))).scalars())
        applied: list[int] = []
        for migration in migrations:
            if migration.id in done:
                continue
            async with self.engine.begin() as conn:
                await conn.run_sync(_apply, migration)
                await conn.execute(self._migrations.insert().values(
                    id=migration.id, name=migration.name, applied_at=utcnow()))
            applied.append(migration.id)
            log.info("migration applied", extra={"migration": f"{migration.id}:{migration.name}"})
        return applied

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    async def write(self, work: Callable[[sa.Connection], T]) -> T:
        """`work(conn)` in one transaction, committed when it returns (rolled back if it raises), with
        the fewest round trips the driver allows (see the module's docstring). `work` gets a synchronous
        connection and may run on a worker thread: build what it writes beforehand, on the loop."""
        if self._sync_engine is not None:
            return await asyncio.to_thread(_write_sync, self._sync_engine, work)
        async with self.engine.begin() as conn:
            return await conn.run_sync(work)

    async def read(self, work: Callable[[sa.Connection], T]) -> T:
        """`work(conn)` on a connection whose transaction is rolled back afterwards, as `write` runs it:
        for short reads on a hot path (the outbox relay's). Return plain data, not a live result."""
        if self._sync_engine is not None:
            return await asyncio.to_thread(_read_sync, self._sync_engine, work)
        async with self.engine.connect() as conn:
            return await conn.run_sync(work)

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        await self.engine.dispose()
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    # -- idempotency helpers ------------------------------------------------------
    async def insert_ignore(self, conn: AsyncConnection, table: sa.Table, values: dict[str, Any]) -> bool:
        """INSERT unless the primary/unique key exists. True when a row was inserted."""
        stmt: Any
        if self.dialect == "postgresql":
            stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
        else:
            stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
        result = await conn.execute(stmt)
        return bool(result.rowcount == 1)

    async def handle_once(
        self, event_id: str, subject: str, effect: Callable[[AsyncConnection], Awaitable[None]]
    ) -> bool:
        """Run `effect` and record `event_id` in one transaction, unless it was seen before.

        Returns False (and runs nothing) for a redelivered or replayed event.
        """
        async with self.engine.begin() as conn:
            fresh = await self.insert_ignore(
                conn, self.inbox_table, {"event_id": event_id, "subject": subject, "processed_at": utcnow()})
            if not fresh:
                return False
            await effect(conn)
            return True


def _apply(sync_conn: sa.Connection, migration: Migration) -> None:
    migration.up(Operations(MigrationContext.configure(sync_conn)))


def _write_sync(engine: sa.Engine, work: Callable[[sa.Connection], T]) -> T:
    with engine.begin() as conn:
        return work(conn)


def _read_sync(engine: sa.Engine, work: Callable[[sa.Connection], T]) -> T:
    with engine.connect() as conn:
        return work(conn)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
