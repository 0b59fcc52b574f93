"""`/health` and `/ready` against real gRPC health servers for all six services and the real
NATS, Redis and database: all SERVING gives 200, a stopped service gives 503 and says so."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from redis.asyncio import Redis

from dreamforge.bus import EventBus
from dreamforge.db import Database
from dreamforge.grpcio import channel
from dreamforge.settings import SERVICES
from dreamforge.v1 import registry_pb2_grpc
from services.gateway.app import GatewayDeps, create_app
from services.gateway.http_server import HttpServer
from services.gateway.keys import KeyStore
from services.gateway.settings import GatewaySettings


async def health_server() -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@pytest.fixture
async def six_services() -> AsyncIterator[dict[str, tuple[grpc.aio.Server, int]]]:
    servers = {name: await health_server() for name in SERVICES}
    yield servers
    for server, _ in servers.values():
        await server.stop(None)


async def test_health_reports_every_service_and_dependency(
        six_services: dict[str, tuple[grpc.aio.Server, int]], nats_url: str, redis_url: str, tmp_path: Path) -> None:
    ports = {name: port for name, (_, port) in six_services.items()}
    settings = GatewaySettings(
        home=tmp_path, nats_url=nats_url, redis_url=redis_url, gateway_grpc_port=ports["gateway"],
        **{f"{name}_addr": f"127.0.0.1:{port}" for name, port in ports.items() if name != "gateway"})
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", "gateway")
    keys = KeyStore(db)
    await db.migrate(keys.migrations)
    bus = EventBus(nats_url, "gateway")
    await bus.connect()
    redis = Redis.from_url(redis_url)
    async with channel(settings.grpc_target("registry")) as ch:
        deps = GatewayDeps(settings, keys, redis, bus, registry_pb2_grpc.RegistryServiceStub(ch))
        http = HttpServer(create_app(deps), "127.0.0.1", 0)
        await http.start()  # uvicorn in this loop: the bus and channels belong to it
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}") as client:
            reply = await client.get("/health")
            assert reply.status_code == 200, reply.text
            assert reply.json() == {
                "status": "ok", "services": dict.fromkeys(SERVICES, "SERVING"),
                "dependencies": {"nats": "ok", "redis": "ok", "database": "ok"}}
            assert (await client.get("/ready")).status_code == 200

            await six_services["trainer"][0].stop(None)
            reply = await client.get("/health")
            assert reply.status_code == 503
            body = reply.json()
            assert body["status"] == "degraded" and body["services"]["trainer"] != "SERVING"
            assert body["services"]["registry"] == "SERVING"
            assert (await client.get("/ready")).status_code == 200  # the gateway itself can still serve

            await bus.close()
            reply = await client.get("/health")
            assert reply.status_code == 503 and reply.json()["dependencies"]["nats"] == "down"
            ready = await client.get("/ready")
            assert ready.status_code == 503 and ready.json()["dependencies"]["nats"] == "down"
        await http.stop()
    await redis.aclose()
    await db.close()
