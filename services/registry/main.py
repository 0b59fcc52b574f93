"""Wires the registry into the shared ServiceRuntime: schema migrations, the artifact store,
the store, the gRPC servicer, and the outbox relay that publishes `model.updated`
(started once NATS answers, stopped with a final flush on SIGTERM)."""

from __future__ import annotations

from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import registry_pb2_grpc
from services.registry.artifacts import make_artifact_store
from services.registry.grpc_api import RegistryServicer
from services.registry.settings import RegistrySettings
from services.registry.store import RegistryStore

SERVICE_NAME = "dreamforge.v1.RegistryService"
_MESSAGE_OVERHEAD = 1024 * 1024


async def build(runtime: ServiceRuntime) -> RegistryStore:
    settings = runtime.settings_as(RegistrySettings)
    artifacts = make_artifact_store(settings.artifact_store, settings.home, endpoint_url=settings.s3_endpoint_url)
    store = RegistryStore(runtime.db, artifacts, max_artifact_bytes=settings.max_artifact_bytes)
    runtime.migrations.extend(store.migrations)

    # CreateVersion carries the artifact in one message: the receive limit must fit
    # max_artifact_bytes, or gRPC would refuse real adapters before our own (clearer)
    # size check could answer.
    runtime.max_receive_message_bytes = min(settings.max_artifact_bytes + _MESSAGE_OVERHEAD, 2**31 - 1)
    runtime.add_servicer(registry_pb2_grpc.add_RegistryServiceServicer_to_server,
                         RegistryServicer(store, chunk_bytes=settings.artifact_chunk_bytes), SERVICE_NAME)

    async def start_relay() -> None:
        store.outbox.start_relay(runtime.bus)
        runtime.log.info("outbox relay started", extra={"artifact_store": artifacts.describe()})

    async def stop_relay() -> None:
        await store.outbox.stop(runtime.bus)

    runtime.on_start(start_relay)
    runtime.on_stop(stop_relay)
    return store
