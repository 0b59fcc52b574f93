"""Wires the gateway into the shared service runtime.

`build(runtime)` adds the key tables' migrations and the public gRPC front; the runtime's
`on_start` hook (after DB migration and NATS connect) checks Redis, makes sure the
bootstrap admin key exists, and starts uvicorn; `on_stop` drains uvicorn, then closes
Redis and the backend channels.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from litestar import Litestar
from redis.asyncio import Redis

from dreamforge.grpcio import channel
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import feedback_pb2_grpc, gateway_pb2_grpc, inference_pb2_grpc, registry_pb2_grpc, trainer_pb2_grpc
from services.gateway.app import GatewayDeps, create_app
from services.gateway.billing_client import billing_stub
from services.gateway.grpc_front import GatewayServicer
from services.gateway.http_server import HttpServer
from services.gateway.keys import KeyStore, ensure_bootstrap_admin
from services.gateway.settings import GatewaySettings

log = logging.getLogger("dreamforge.gateway")


@dataclass
class Gateway:
    """What `build` returns (`runtime.state`): the deps, the app and its HTTP server."""

    deps: GatewayDeps
    app: Litestar
    http: HttpServer


async def build(runtime: ServiceRuntime) -> Gateway:
    settings = runtime.settings_as(GatewaySettings)
    keys = KeyStore(runtime.db, settings.key_cache_ttl_s)
    runtime.migrations.extend(keys.migrations)
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=5)
    registry_channel = channel(settings.grpc_target("registry"))
    inference_channel = channel(settings.grpc_target("inference"))
    billing_channel = channel(settings.grpc_target("billing"))
    trainer_channel = channel(settings.grpc_target("trainer"))
    feedback_channel = channel(settings.grpc_target("feedback"))
    deps = GatewayDeps(
        settings=settings, keys=keys, redis=redis, bus=runtime.bus,
        registry=registry_pb2_grpc.RegistryServiceStub(registry_channel),  # type: ignore[no-untyped-call]
        inference=inference_pb2_grpc.InferenceServiceStub(inference_channel),  # type: ignore[no-untyped-call]
        billing=billing_stub(billing_channel),
        trainer=trainer_pb2_grpc.TrainerServiceStub(trainer_channel),  # type: ignore[no-untyped-call]
        tuning=trainer_pb2_grpc.TuningServiceStub(trainer_channel),  # type: ignore[no-untyped-call]
        feedback=feedback_pb2_grpc.FeedbackServiceStub(feedback_channel),  # type: ignore[no-untyped-call]
        serving=lambda: runtime.ready,
    )
    runtime.add_servicer(
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server,
        GatewayServicer(keys, deps.limiter(), deps.registry, deps.inference,  # type: ignore[arg-type]
                        settings.backend_timeout_s, quota=deps.quota, idempotency=deps.idempotency()),
        "dreamforge.v1.GatewayService",
    )
    app = create_app(deps)
    http = HttpServer(app, settings.host, settings.gateway_http_port, settings.shutdown_grace_s)

    async def start() -> None:
        try:
            await redis.ping()
        except Exception as exc:  # not fatal: rate limits fail open and /ready says 503 until it answers
            log.warning("redis not answering yet", extra={"error": repr(exc)})
        await ensure_bootstrap_admin(keys, settings.home)
        await http.start()

    async def stop() -> None:
        await http.stop()
        await redis.aclose()
        await registry_channel.close()
        await inference_channel.close()
        await billing_channel.close()
        await trainer_channel.close()
        await feedback_channel.close()

    runtime.on_start(start)
    runtime.on_stop(stop)
    return Gateway(deps, app, http)
