"""The app built directly (`create_app`) on each key-store database, with a registry stand-in
that fails in chosen ways: admin + auth on SQLite and PostgreSQL, and how backend failures
and bugs reach the client (503/501/502/500, always the JSON error shape)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from redis.asyncio import Redis

from dreamforge.bus import EventBus
from dreamforge.db import Database
from dreamforge.grpcio import channel
from dreamforge.v1 import registry_pb2_grpc
from services.gateway.app import GatewayDeps, create_app
from services.gateway.http_server import HttpServer
from services.gateway.keys import KeyStore, ensure_bootstrap_admin
from services.gateway.settings import GatewaySettings


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class FailingRegistry:
    """Stands in for RegistryServiceStub: GetModel fails as the model name says."""

    async def GetModel(self, request: Any, **_: Any) -> Any:
        failures: dict[str, Exception] = {
            "unimplemented": rpc_error(grpc.StatusCode.UNIMPLEMENTED, "diffing is not available yet"),
            "exhausted": rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota used up"),
            "conflict": rpc_error(grpc.StatusCode.FAILED_PRECONDITION, "alias is locked"),
            "internal": rpc_error(grpc.StatusCode.INTERNAL, "disk on fire"),
            "bug": RuntimeError("a bug in the gateway"),
        }
        raise failures[request.model]


@pytest.fixture
async def app_client(database_url: str, nats_url: str, redis_url: str,
                     tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, KeyStore, dict[str, str]]]:
    settings = GatewaySettings(home=tmp_path, nats_url=nats_url, redis_url=redis_url)
    db = Database(database_url, "gateway")
    keys = KeyStore(db)
    await db.migrate(keys.migrations)
    admin_key = await ensure_bootstrap_admin(keys, tmp_path)
    bus = EventBus(nats_url, "gateway")
    await bus.connect()
    redis = Redis.from_url(redis_url)
    deps = GatewayDeps(settings, keys, redis, bus, FailingRegistry())  # type: ignore[arg-type]
    http = HttpServer(create_app(deps), "127.0.0.1", 0)
    await http.start()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}") as client:
        yield client, keys, {"Authorization": f"Bearer {admin_key}"}
    await http.stop()
    await bus.close()
    await redis.aclose()
    await db.close()


async def test_admin_and_auth_on_each_database(
        app_client: tuple[httpx.AsyncClient, KeyStore, dict[str, str]]) -> None:
    client, _, admin = app_client
    tenant = (await client.post("/v1/admin/tenants", json={"name": "db-tenant"}, headers=admin)).json()
    created = (await client.post("/v1/admin/keys", json={"tenant_id": tenant["id"], "scopes": ["app"]},
                                 headers=admin)).json()
    user = {"Authorization": f"Bearer {created['key']}"}
    assert (await client.get("/v1/whoami", headers=user)).json()["tenant_id"] == tenant["id"]
    assert (await client.delete(f"/v1/admin/keys/{created['id']}", headers=admin)).status_code == 204
    reply = await client.get("/v1/whoami", headers=user)
    assert reply.status_code == 401 and "revoked" in reply.json()["error"]["message"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("model", "status", "code", "fragment"), [
    ("unimplemented", 501, "unimplemented", "diffing is not available yet"),
    ("exhausted", 429, "resource_exhausted", "quota used up"),
    ("conflict", 409, "failed_precondition", "alias is locked"),
    ("internal", 502, "bad_gateway", "disk on fire"),
    ("bug", 500, "internal", "request id req_"),
])
async def test_backend_failures_keep_the_error_shape(
        app_client: tuple[httpx.AsyncClient, KeyStore, dict[str, str]], caplog: pytest.LogCaptureFixture,
        model: str, status: int, code: str, fragment: str) -> None:
    client, _, admin = app_client
    with caplog.at_level(logging.ERROR, logger="dreamforge.gateway.errors"):
        reply = await client.get(f"/v1/models/{model}", headers=admin)
    assert reply.status_code == status
    error = reply.json()["error"]
    assert error["code"] == code and fragment in error["message"]
    assert error["request_id"] == reply.headers["x-request-id"]
    if model == "bug":
        record = next(r for r in caplog.records if r.msg == "unhandled error")
        assert record.exc_info is not None and record.request_id == error["request_id"]  # type: ignore[attr-defined]
        assert "a bug in the gateway" not in reply.text  # internals stay in the log


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_unreachable_registry_is_503(database_url: str, nats_url: str, redis_url: str, tmp_path: Path) -> None:
    settings = GatewaySettings(home=tmp_path, nats_url=nats_url, redis_url=redis_url, backend_timeout_s=2)
    db = Database(database_url, "gateway")
    keys = KeyStore(db)
    await db.migrate(keys.migrations)
    admin_key = await ensure_bootstrap_admin(keys, tmp_path)
    bus = EventBus(nats_url, "gateway")
    await bus.connect()
    redis = Redis.from_url(redis_url)
    async with channel("127.0.0.1:1") as ch:
        deps = GatewayDeps(settings, keys, redis, bus, registry_pb2_grpc.RegistryServiceStub(ch))
        http = HttpServer(create_app(deps), "127.0.0.1", 0)
        await http.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}") as client:
            reply = await client.get("/v1/models", headers={"Authorization": f"Bearer {admin_key}"})
        await http.stop()
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "unavailable"
    assert "unavailable" in reply.json()["error"]["message"]
    await bus.close()
    await redis.aclose()
    await db.close()
