"""Wires the feedback service: the outputs table, the `inference.completed` consumer, gRPC API."""

from __future__ import annotations

from dreamforge.events import INFERENCE_COMPLETED
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import feedback_pb2_grpc
from services.feedback.grpc_api import FeedbackServicer
from services.feedback.outputs import OutputStore


async def build(runtime: ServiceRuntime) -> OutputStore:
    outputs = OutputStore(runtime.db)
    runtime.migrations.extend(outputs.migrations)

    async def on_completed(event, delivery):  # type: ignore[no-untyped-def]
        await outputs.keep(event, delivery)

    runtime.bus.subscribe(INFERENCE_COMPLETED, on_completed, durable="feedback-outputs")
    runtime.add_servicer(feedback_pb2_grpc.add_FeedbackServiceServicer_to_server, FeedbackServicer(outputs),
                         "dreamforge.v1.FeedbackService")
    return outputs
