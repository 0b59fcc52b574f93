"""The app as built: OpenAPI completeness, limits, and uvicorn kept off the process's signals."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
from redis.asyncio import Redis

from dreamforge.bus import EventBus
from dreamforge.db import Database
from dreamforge.grpcio import channel
from dreamforge.v1 import registry_pb2_grpc
from services.gateway.app import GatewayDeps, create_app
from services.gateway.http_server import HttpServer
from services.gateway.keys import KeyStore
from services.gateway.settings import MIB, GatewaySettings


def make_deps(tmp_path: Path, **settings: object) -> GatewayDeps:
    """Deps whose connections are never opened (nothing here touches the network)."""
    gateway_settings = GatewaySettings(home=tmp_path, **settings)  # type: ignore[arg-type]
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", "gateway")
    return GatewayDeps(gateway_settings, KeyStore(db), Redis.from_url("redis://127.0.0.1:1/0"),
                       EventBus("nats://127.0.0.1:1", "gateway"),
                       registry_pb2_grpc.RegistryServiceStub(channel("127.0.0.1:1")))


def test_settings_defaults(tmp_path: Path) -> None:
    settings = GatewaySettings(home=tmp_path)
    assert settings.max_body_bytes == 20 * MIB
    assert (settings.rate_limit_per_minute, settings.rate_limit_burst) == (600, 60)
    assert settings.admin_key_file == tmp_path / "admin-key"


async def test_every_operation_is_documented(tmp_path: Path) -> None:
    app = create_app(make_deps(tmp_path, max_body_bytes=4096))
    doc = app.openapi_schema.to_schema()
    assert doc["info"]["title"] == "DreamForge API"
    operations = {(method.upper(), path): op for path, item in doc["paths"].items() for method, op in item.items()}
    # 24 + caption, query, detect, point, compare, batch, chat completions + 6 training (jobs x4, policy x2)
    # + 20 feedback (ratings and data x10, rater x2, reward functions x6, metrics, score)
    # + 9 billing (usage, report, quote, plans x3, tenant plan x2, Stripe webhook)
    # + 10 tuning (finetunes x4, rollouts, train_step, metrics, checkpoints x3)
    assert len(operations) == 76
    ids = [op["operationId"] for op in operations.values()]
    assert len(set(ids)) == len(ids)
    assert all(op.get("summary") and op.get("tags") for op in operations.values())
    assert "security" not in operations[("GET", "/health")]
    assert operations[("GET", "/v1/models")]["security"] == [{"apiKey": []}]
    assert any(route.path == "/v1/events/ws" for route in app.routes)
    assert all(h.resolve_request_max_body_size() == 4096
               for route in app.routes for h in getattr(route, "route_handlers", []) if hasattr(
                   h, "resolve_request_max_body_size"))


async def test_embedded_uvicorn_leaves_signal_handlers_alone(tmp_path: Path) -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = HttpServer(create_app(make_deps(tmp_path)), "127.0.0.1", 0)
    await server.start()
    try:
        assert {sig: signal.getsignal(sig) for sig in before} == before
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://127.0.0.1:{server.port}/docs/openapi.json")).status_code == 200
    finally:
        await server.stop()
    assert {sig: signal.getsignal(sig) for sig in before} == before


async def test_responses_are_not_held_back_by_nagle() -> None:
    """uvicorn writes a response's head and body separately: without TCP_NODELAY on the sockets the
    gateway accepts, every keep-alive response after the first few waits ~40 ms for a delayed ACK."""
    import socket

    from litestar import Litestar, get

    @get("/ping", sync_to_thread=False)
    def ping() -> str:
        return "pong"

    server = HttpServer(Litestar([ping]), "127.0.0.1", 0)
    await server.start()
    try:
        assert server._server is not None
        listening = server._server.servers[0].sockets[0]
        assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            assert (await client.get("/ping")).text == "pong"
    finally:
        await server.stop()
