"""Wires the inference service: routing table and resolution cache fed by `model.updated`,
the model runtimes, the outbox relay for `inference.completed` / `usage.recorded`, gRPC API.

`model.updated` arrives twice on purpose: the durable consumer `inference-routes` keeps the
routing table exactly once (inbox), and a core NATS subscription lets *every* replica clear
its resolution cache at once (a durable consumer hands each event to one replica only).

Without a default checkpoint (torch runtime, `models/default` not built and
DREAMFORGE_DEFAULT_MODEL not set) the skills answer UNIMPLEMENTED saying so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from dreamforge.events import MODEL_UPDATED
from dreamforge.grpcio import channel
from dreamforge.image_store import ImageStore
from dreamforge.outbox import Outbox
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import events_pb2, inference_pb2_grpc, registry_pb2_grpc
from services.inference.artifacts import AdapterFiles
from services.inference.grpc_api import InferenceServicer, NoModelServicer
from services.inference.pool import RuntimePool
from services.inference.resolver import Resolver
from services.inference.routes import RouteTable
from services.inference.runtime.factory import missing_default_model
from services.inference.served import ServedEvents
from services.inference.service import InferenceService
from services.inference.settings import InferenceSettings

SERVICE_NAME = "dreamforge.v1.InferenceService"
log = logging.getLogger("dreamforge.inference")


@dataclass
class Inference:
    """What build() returns (the runtime's `state`), for tests and tools."""

    routes: RouteTable
    service: InferenceService
    outbox: Outbox
    settings: InferenceSettings


async def build(runtime: ServiceRuntime) -> Inference:
    settings = runtime.settings_as(InferenceSettings)
    routes = RouteTable(runtime.db)
    outbox = Outbox(runtime.db)
    runtime.migrations.extend([*routes.migrations, outbox.migration(2)])

    registry_channel = channel(settings.grpc_target("registry"))
    registry = registry_pb2_grpc.RegistryServiceStub(registry_channel)  # type: ignore[no-untyped-call]
    service = InferenceService(
        settings,
        Resolver(registry, ttl_s=settings.resolve_cache_s, timeout_s=settings.registry_timeout_s),
        AdapterFiles(settings.adapters_dir, registry, max_bytes=settings.max_adapter_bytes),
        RuntimePool(settings),
        ServedEvents(runtime.db, outbox, ImageStore(settings.home / "images")),
    )

    async def on_model_updated(event: events_pb2.ModelUpdated, delivery: Any) -> None:
        await routes.apply(event, delivery)
        service.on_model_updated(event)

    runtime.bus.subscribe(MODEL_UPDATED, on_model_updated, durable="inference-routes")
    reason = missing_default_model(settings)
    if reason:
        log.warning("skills disabled", extra={"reason": reason})
        service.prefetch = False
    servicer = NoModelServicer(reason) if reason else InferenceServicer(service)
    runtime.add_servicer(inference_pb2_grpc.add_InferenceServiceServicer_to_server, servicer, SERVICE_NAME)
    subscriptions: list[Any] = []

    async def on_core_message(msg: Any) -> None:
        try:
            service.on_model_updated(events_pb2.ModelUpdated.FromString(msg.data))
        except DecodeError:
            log.warning("undecodable model.updated on the core subscription", extra={"subject": msg.subject})

    async def start() -> None:
        outbox.start_relay(runtime.bus, settle=lambda: service.activity.quiet(
            settings.events_quiet_ms / 1000, at_most_s=settings.events_linger_ms / 1000))
        subscriptions.append(await runtime.bus.nc.subscribe(MODEL_UPDATED.all_tenants, cb=on_core_message))
        if settings.warm_up and not reason:
            await service.warm_up()  # before ready: the first request finds the model loaded

    async def stop() -> None:
        for sub in subscriptions:
            try:
                await sub.unsubscribe()
            except Exception:
                log.debug("unsubscribe failed", exc_info=True)
        await service.close()
        await outbox.stop(runtime.bus)
        await registry_channel.close()

    runtime.on_start(start)
    runtime.on_stop(stop)
    return Inference(routes, service, outbox, settings)
