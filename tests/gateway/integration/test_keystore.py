"""Tenants and API keys on SQLite and PostgreSQL: hashed storage, revocation (and how fast
other replicas see it), and the bootstrap admin key file."""

from __future__ import annotations

import asyncio
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dreamforge.db import Database
from dreamforge.grpcio import AlreadyExists, InvalidArgument, NotFound
from services.gateway.keys import KeyStore, Unauthenticated, ensure_bootstrap_admin


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[KeyStore]:
    db = Database(database_url, "gateway")
    keys = KeyStore(db, cache_ttl_s=0.5)
    await db.migrate(keys.migrations)
    assert await db.migrate(keys.migrations) == []  # a restart applies nothing new
    yield keys
    await db.close()


async def all_rows_as_text(db: Database) -> str:
    async with db.engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        dump = []
        for name in names:
            dump += [repr(tuple(row)) for row in (await conn.execute(sa.text(f'SELECT * FROM "{name}"'))).all()]
    return "\n".join(dump)


async def test_keys_are_stored_hashed_and_shown_once(store: KeyStore) -> None:
    tenant = await store.create_tenant("acme")
    key, raw = await store.create_key(tenant.id, ["app", "ml"], name="ci", rate_limit_per_minute=5)
    secret = raw.split("_", 2)[2]
    assert raw.startswith(f"df_{key.id}_") and len(secret) >= 40
    dump = await all_rows_as_text(store.db)
    assert key.id in dump and raw not in dump and secret not in dump
    principal = await store.authenticate(raw)
    assert (principal.tenant_id, principal.key_id, principal.scopes) == (tenant.id, key.id, {"app", "ml"})
    assert principal.rate_limit_per_minute == 5
    assert [k.id for k in await store.list_keys(tenant.id)] == [key.id]


async def test_tenants_and_keys_validate(store: KeyStore) -> None:
    tenant = await store.create_tenant("dup")
    assert tenant.id.startswith("t_")
    with pytest.raises(AlreadyExists):
        await store.create_tenant("dup")
    with pytest.raises(NotFound):
        await store.create_key("t_nobody", ["app"])
    with pytest.raises(InvalidArgument):
        await store.create_key(tenant.id, ["superuser"])
    with pytest.raises(NotFound):
        await store.revoke_key("0123456789abcdef")


async def test_revocation_is_immediate_here_and_within_the_ttl_elsewhere(store: KeyStore) -> None:
    tenant = await store.create_tenant("t")
    key, raw = await store.create_key(tenant.id, ["app"])
    replica = KeyStore(store.db, cache_ttl_s=0.5)  # another gateway process on the same DB
    await replica.authenticate(raw)
    await store.revoke_key(key.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        await store.authenticate(raw)
    started = time.monotonic()
    while True:
        try:
            await replica.authenticate(raw)
        except Unauthenticated:
            break
        await asyncio.sleep(0.02)
    assert time.monotonic() - started <= 0.6
    again = await store.revoke_key(key.id)  # idempotent: keeps the first revocation time
    assert again.revoked_at is not None


async def test_lookup_cost_with_and_without_the_cache(store: KeyStore) -> None:
    tenant = await store.create_tenant("perf")
    _, raw = await store.create_key(tenant.id, ["app"])
    uncached = KeyStore(store.db, cache_ttl_s=0)
    timings = {}
    for name, keys in (("cached", store), ("db", uncached)):
        await keys.authenticate(raw)
        started = time.perf_counter()
        for _ in range(50):
            await keys.authenticate(raw)
        timings[name] = (time.perf_counter() - started) / 50 * 1000
    print(f"\nkey lookup ms/request ({store.db.dialect}): {timings}")
    assert timings["cached"] < timings["db"]


async def test_bootstrap_admin_key_file(store: KeyStore, tmp_path: Path) -> None:
    home = tmp_path / "home"
    raw = await ensure_bootstrap_admin(store, home)
    path = home / "admin-key"
    assert raw is not None and path.read_text().strip() == raw
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "admin" in (await store.authenticate(raw)).scopes
    assert (await store.tenant_by_name("admin")) is not None

    assert await ensure_bootstrap_admin(store, home) is None  # restart: file kept as is
    assert path.read_text().strip() == raw

    path.unlink()  # lost file: a new key for the same admin tenant
    second = await ensure_bootstrap_admin(store, home)
    assert second is not None and second != raw and path.read_text().strip() == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(await store.list_tenants()) == 1

    await store.revoke_key((await store.authenticate(second)).key_id)  # revoked: replaced
    third = await ensure_bootstrap_admin(store, home)
    assert third is not None and path.read_text().strip() == third
