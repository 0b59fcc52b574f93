"""Admin routes (scope `admin`): tenants and API keys; plus `GET /v1/whoami` for any key."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import Parameter

from dreamforge.grpcio import FailedPrecondition
from services.gateway.auth import requires
from services.gateway.keys import ApiKey, KeyStore, Principal, Tenant
from services.gateway.openapi import error_responses
from services.gateway.schemas.admin import CreatedKey, CreateKey, CreateTenant, KeyOut, TenantOut, WhoAmI

SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}]


class TenantList(msgspec.Struct):
    tenants: list[TenantOut]


class KeyList(msgspec.Struct):
    keys: list[KeyOut]


def tenant_out(t: Tenant) -> TenantOut:
    return TenantOut(id=t.id, name=t.name, created_at=t.created_at)


def key_out(k: ApiKey) -> KeyOut:
    return KeyOut(id=k.id, tenant_id=k.tenant_id, scopes=list(k.scopes), name=k.name,
                  rate_limit_per_minute=k.rate_limit_per_minute, created_at=k.created_at, revoked_at=k.revoked_at)


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]
    guards = [requires("admin")]
    security = SECURITY

    @post("/tenants", operation_id="createTenant", summary="Create a tenant", responses=error_responses(409))
    async def create_tenant(self, key_store: KeyStore, data: CreateTenant) -> TenantOut:
        return tenant_out(await key_store.create_tenant(data.name))

    @get("/tenants", operation_id="listTenants", summary="List tenants")
    async def list_tenants(self, key_store: KeyStore) -> TenantList:
        return TenantList([tenant_out(t) for t in await key_store.list_tenants()])

    @post("/keys", operation_id="createApiKey", responses=error_responses(404),
          summary="Create an API key for a tenant (the key is shown in this response only)")
    async def create_key(self, key_store: KeyStore, data: CreateKey) -> CreatedKey:
        key, raw = await key_store.create_key(data.tenant_id, list(data.scopes), name=data.name,
                                              rate_limit_per_minute=data.rate_limit_per_minute)
        return CreatedKey(id=key.id, key=raw, tenant_id=key.tenant_id, scopes=list(key.scopes), name=key.name,
                          rate_limit_per_minute=key.rate_limit_per_minute, created_at=key.created_at)

    @get("/keys", operation_id="listApiKeys", summary="List API keys (never their secrets)")
    async def list_keys(
        self, key_store: KeyStore,
        tenant_id: Annotated[str | None, Parameter(description="Only this tenant's keys")] = None,
    ) -> KeyList:
        return KeyList([key_out(k) for k in await key_store.list_keys(tenant_id)])

    @delete("/keys/{key_id:str}", operation_id="revokeApiKey", responses=error_responses(404, 409),
            summary="Revoke an API key (not the one making the request: use another admin key for that)")
    async def revoke_key(self, key_store: KeyStore, principal: Principal, key_id: str) -> None:
        if key_id == principal.key_id:  # the API must never lock its last administrator out
            raise FailedPrecondition(
                f"API key {key_id} is the key making this request and cannot revoke itself; create another admin "
                "key (POST /v1/admin/keys) and revoke this one with it")
        await key_store.revoke_key(key_id)


@get("/v1/whoami", operation_id="whoAmI", summary="The tenant, key and scopes of the calling API key",
     tags=["auth"], security=SECURITY)
async def whoami(principal: Principal) -> WhoAmI:
    return WhoAmI(tenant_id=principal.tenant_id, key_id=principal.key_id, scopes=sorted(principal.scopes))
