"""Tenants and API keys: the gateway's own tables, authentication, and the bootstrap admin key.

A key reads `df_<key id>_<secret>`. Only sha256(secret) is stored, so the database never
holds anything that authenticates; the full key is returned once, by `create_key`.
Lookups are cached in memory for `cache_ttl_s` (default 1 s): a revocation made through
this process is seen at once, one made through another gateway replica within the TTL.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
import sqlalchemy as sa
from alembic.operations import Operations

from dreamforge.db import Database, Migration, UtcDateTime, utcnow
from dreamforge.grpcio import AlreadyExists, InvalidArgument, NotFound, ServiceError

log = logging.getLogger("dreamforge.gateway.keys")

#: Every scope a key can carry; `admin` implies all of them.
SCOPES = ("app", "rater", "ml", "finance", "admin")
ADMIN_TENANT = "admin"
KEY_PREFIX = "df"
_KEY = re.compile(r"^df_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$")
_CACHE_MAX = 10_000


class Unauthenticated(ServiceError):
    code = grpc.StatusCode.UNAUTHENTICATED


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant_id: str
    scopes: tuple[str, ...]
    name: str | None
    rate_limit_per_minute: int | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from an API key, never from the request body."""

    tenant_id: str
    key_id: str
    scopes: frozenset[str]
    rate_limit_per_minute: int | None = None

    def has_scope(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def new_tenant_id() -> str:
    return f"t_{secrets.token_hex(8)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(raw: str) -> tuple[str, str]:
    """(key id, secret) of a well-formed key; Unauthenticated otherwise."""
    match = _KEY.match(raw.strip())
    if match is None:
        raise Unauthenticated("malformed API key: expected df_<key id>_<secret>")
    return match.group(1), match.group(2)


class KeyStore:
    """Tenants and API keys in the gateway's database."""

    def __init__(self, db: Database, cache_ttl_s: float = 1.0) -> None:
        self.db = db
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, tuple[float, tuple[str, ApiKey] | None]] = {}
        metadata = sa.MetaData()  # query-side tables only; the schema itself comes from `migrations`
        self.tenants = sa.Table(
            db.table("tenants"), metadata,
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("name", sa.String(200), nullable=False, unique=True),
            sa.Column("created_at", UtcDateTime, nullable=False),
        )
        self.keys = sa.Table(
            db.table("api_keys"), metadata,
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("tenant_id", sa.String(40), sa.ForeignKey(self.tenants.c.id), nullable=False),
            sa.Column("secret_sha256", sa.String(64), nullable=False),
            sa.Column("scopes", sa.String(200), nullable=False),
            sa.Column("name", sa.String(200)),
            sa.Column("rate_limit_per_minute", sa.Integer),
            sa.Column("created_at", UtcDateTime, nullable=False),
            sa.Column("revoked_at", UtcDateTime),
        )

    @property
    def migrations(self) -> list[Migration]:
        tenants, keys = self.db.table("tenants"), self.db.table("api_keys")

        def create_tables(op: Operations) -> None:
            op.create_table(
                tenants,
                sa.Column("id", sa.String(40), primary_key=True),
                sa.Column("name", sa.String(200), nullable=False),
                sa.Column("created_at", UtcDateTime, nullable=False),
                sa.UniqueConstraint("name", name=f"uq_{tenants}_name"),
            )
            op.create_table(
                keys,
                sa.Column("id", sa.String(32), primary_key=True),
                sa.Column("tenant_id", sa.String(40), sa.ForeignKey(f"{tenants}.id"), nullable=False),
                sa.Column("secret_sha256", sa.String(64), nullable=False),
                sa.Column("scopes", sa.String(200), nullable=False),
                sa.Column("name", sa.String(200)),
                sa.Column("rate_limit_per_minute", sa.Integer),
                sa.Column("created_at", UtcDateTime, nullable=False),
                sa.Column("revoked_at", UtcDateTime),
            )
            op.create_index(f"ix_{keys}_tenant_id", keys, ["tenant_id"])

        return [Migration(1, "gateway tenants and api keys", create_tables)]

    # -- tenants ------------------------------------------------------------------
    async def create_tenant(self, name: str) -> Tenant:
        tenant = Tenant(new_tenant_id(), name, utcnow())
        try:
            async with self.db.transaction() as conn:
                await conn.execute(self.tenants.insert().values(
                    id=tenant.id, name=tenant.name, created_at=tenant.created_at))
        except sa.exc.IntegrityError:
            raise AlreadyExists(f"a tenant named {name!r} already exists") from None
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(self.tenants.select().where(self.tenants.c.id == tenant_id))).first()
        if row is None:
            raise NotFound(f"tenant {tenant_id!r} not found")
        return Tenant(row.id, row.name, row.created_at)

    async def tenant_by_name(self, name: str) -> Tenant | None:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(self.tenants.select().where(self.tenants.c.name == name))).first()
        return Tenant(row.id, row.name, row.created_at) if row is not None else None

    async def list_tenants(self) -> list[Tenant]:
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(self.tenants.select().order_by(self.tenants.c.created_at))).all()
        return [Tenant(r.id, r.name, r.created_at) for r in rows]

    # -- keys ---------------------------------------------------------------------
    async def create_key(
        self, tenant_id: str, scopes: list[str], *, name: str | None = None,
        rate_limit_per_minute: int | None = None,
    ) -> tuple[ApiKey, str]:
        """Create a key; returns it with the plaintext key, which is never available again."""
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidArgument(f"scopes must be a non-empty subset of {list(SCOPES)}; unknown: {unknown}")
        await self.get_tenant(tenant_id)
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        key = ApiKey(key_id, tenant_id, tuple(s for s in SCOPES if s in scopes), name,
                     rate_limit_per_minute, utcnow(), None)
        async with self.db.transaction() as conn:
            await conn.execute(self.keys.insert().values(
                id=key.id, tenant_id=key.tenant_id, secret_sha256=hash_secret(secret),
                scopes=" ".join(key.scopes), name=key.name, rate_limit_per_minute=key.rate_limit_per_minute,
                created_at=key.created_at))
        return key, f"{KEY_PREFIX}_{key_id}_{secret}"

    async def list_keys(self, tenant_id: str | None = None) -> list[ApiKey]:
        query = self.keys.select().order_by(self.keys.c.created_at)
        if tenant_id is not None:
            query = query.where(self.keys.c.tenant_id == tenant_id)
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_key_from_row(r) for r in rows]

    async def revoke_key(self, key_id: str) -> ApiKey:
        """Revoke a key (idempotent: revoking twice keeps the first time)."""
        async with self.db.transaction() as conn:
            await conn.execute(self.keys.update()
                               .where(self.keys.c.id == key_id, self.keys.c.revoked_at.is_(None))
                               .values(revoked_at=utcnow()))
            row = (await conn.execute(self.keys.select().where(self.keys.c.id == key_id))).first()
        self._cache.pop(key_id, None)
        if row is None:
            raise NotFound(f"API key {key_id!r} not found")
        return _key_from_row(row)

    async def authenticate(self, raw_key: str) -> Principal:
        """The principal of a valid key; Unauthenticated saying what is wrong otherwise."""
        key_id, secret = parse_key(raw_key)
        entry = await self._lookup(key_id)
        if entry is None or not hmac.compare_digest(entry[0], hash_secret(secret)):
            raise Unauthenticated("unknown API key")
        key = entry[1]
        if key.revoked_at is not None:
            raise Unauthenticated(f"API key {key.id} was revoked at {key.revoked_at.isoformat()}")
        return Principal(key.tenant_id, key.id, frozenset(key.scopes), key.rate_limit_per_minute)

    async def _lookup(self, key_id: str) -> tuple[str, ApiKey] | None:
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(self.keys.select().where(self.keys.c.id == key_id))).first()
        entry = (row.secret_sha256, _key_from_row(row)) if row is not None else None
        if self.cache_ttl_s > 0:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key_id] = (now + self.cache_ttl_s, entry)
        return entry


def _key_from_row(row: sa.Row) -> ApiKey:  # type: ignore[type-arg]
    return ApiKey(row.id, row.tenant_id, tuple(row.scopes.split()), row.name, row.rate_limit_per_minute,
                  row.created_at, row.revoked_at)


async def ensure_bootstrap_admin(store: KeyStore, home: Path) -> str | None:
    """Make sure `$home/admin-key` holds a valid admin key (mode 0600).

    On first start: creates tenant "admin" and an admin key and writes the file. Later: a
    file whose key still authenticates with the admin scope is left alone; a missing file
    (or one whose key was revoked) gets a new key. Returns the new key, or None.
    """
    path = home / "admin-key"
    if path.exists():
        try:
            principal = await store.authenticate(path.read_text())
            if "admin" in principal.scopes:
                return None
        except Unauthenticated as exc:
            log.warning("bootstrap admin key no longer valid, creating a new one",
                        extra={"path": str(path), "reason": str(exc)})
    tenant = await store.tenant_by_name(ADMIN_TENANT)
    if tenant is None:
        try:
            tenant = await store.create_tenant(ADMIN_TENANT)
        except AlreadyExists:  # another replica won the race
            tenant = await store.tenant_by_name(ADMIN_TENANT)
            assert tenant is not None
    key, raw = await store.create_key(tenant.id, ["admin"], name="bootstrap admin")
    _write_secret_file(path, raw + "\n")
    log.info("bootstrap admin key written", extra={"path": str(path), "key_id": key.id})
    return raw


def _write_secret_file(path: Path, text: str) -> None:
    """Write atomically, readable by the owner only (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
