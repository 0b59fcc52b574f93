"""Wires the inference service: the routing table fed by `model.updated`, gRPC API."""

from __future__ import annotations

import grpc

from dreamforge.events import MODEL_UPDATED
from dreamforge.grpcio import pending
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import inference_pb2, inference_pb2_grpc
from services.inference.routes import RouteTable


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    """Skills answer UNIMPLEMENTED until a model runtime is configured (the inference issue)."""

    Caption = pending("caption (no model runtime is configured)")
    Query = pending("query (no model runtime is configured)")
    Detect = pending("detect (no model runtime is configured)")
    Point = pending("point (no model runtime is configured)")
    Chat = pending("chat (no model runtime is configured)")
    Stream = pending("streaming (no model runtime is configured)")

    async def ListLoaded(
        self, request: inference_pb2.ListLoadedRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ListLoadedResponse:
        """Nothing is loaded: there is no model runtime in this release yet."""
        return inference_pb2.ListLoadedResponse()


async def build(runtime: ServiceRuntime) -> RouteTable:
    routes = RouteTable(runtime.db)
    runtime.migrations.extend(routes.migrations)

    async def on_model_updated(event, delivery):  # type: ignore[no-untyped-def]
        await routes.apply(event, delivery)

    runtime.bus.subscribe(MODEL_UPDATED, on_model_updated, durable="inference-routes")
    runtime.add_servicer(inference_pb2_grpc.add_InferenceServiceServicer_to_server, InferenceServicer(),
                         "dreamforge.v1.InferenceService")
    return routes
