"""A scripted InferenceService, for the wire-format tests of streaming (SSE framing of
Moondream's and OpenAI's streams, failures mid-stream) only: fixed outputs make exact
frames checkable. Everything else runs against the real inference service."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import grpc

from dreamforge.grpcio import channel
from dreamforge.v1 import inference_pb2, inference_pb2_grpc
from services.gateway.app import create_app
from services.gateway.http_server import HttpServer
from services.gateway.main import Gateway

PIECES = ["A red", " circle", " on white."]
FAILS_MID_STREAM = "fails-mid-stream"
MISSING = "missing"


def final(request_id: str, text: str) -> inference_pb2.SkillResponse:
    return inference_pb2.SkillResponse(request_id=request_id, text=text, model_id="m_fake", version=3,
                                       alias="production", latency_ms=12.5, input_tokens=7, output_tokens=3)


class ScriptedInference(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[object] = []

    async def Chat(self, request: inference_pb2.ChatRequest,
                   context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        self.requests.append(request)
        if request.model.reference == MISSING:
            await context.abort(grpc.StatusCode.NOT_FOUND, "model 'missing' not found")
        return final(request.request_id, "".join(PIECES))

    async def Stream(self, request: inference_pb2.StreamRequest,
                     context: grpc.aio.ServicerContext) -> AsyncIterator[inference_pb2.TextChunk]:
        self.requests.append(request)
        inner = getattr(request, request.WhichOneof("skill"))
        if inner.model.reference == MISSING:
            await context.abort(grpc.StatusCode.NOT_FOUND, "model 'missing' not found")
        for piece in PIECES:
            yield inference_pb2.TextChunk(text=piece)
            if inner.model.reference == FAILS_MID_STREAM:
                await context.abort(grpc.StatusCode.INTERNAL, "the model runtime crashed")
            await asyncio.sleep(0)
        yield inference_pb2.TextChunk(completed=True, final=final(inner.request_id, "".join(PIECES)))


@contextlib.asynccontextmanager
async def gateway_with_scripted_inference(gateway: Gateway) -> AsyncIterator[tuple[str, ScriptedInference]]:
    """A second gateway HTTP server (same keys, Redis, registry) whose inference is scripted: (base url, servicer)."""
    servicer = ScriptedInference()
    server = grpc.aio.server()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with channel(f"127.0.0.1:{port}") as ch:
            deps = dataclasses.replace(gateway.deps, inference=inference_pb2_grpc.InferenceServiceStub(ch))
            http = HttpServer(create_app(deps), "127.0.0.1", 0)
            await http.start()
            try:
                yield f"http://127.0.0.1:{http.port}", servicer
            finally:
                await http.stop()
    finally:
        await server.stop(None)
