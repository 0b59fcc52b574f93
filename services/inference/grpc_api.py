"""gRPC surface of the inference service: checks requests, hands them to InferenceService.

Decoding an image is CPU work (up to 16 megapixels), so validation runs in a worker thread
to keep the event loop (and the batches it is forming) responsive. Boxes and points are
answered in normalised [0, 1] image coordinates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc

from dreamforge.grpcio import InvalidArgument, grpc_errors
from dreamforge.v1 import inference_pb2, inference_pb2_grpc
from services.inference import validation
from services.inference.service import InferenceService
from services.inference.validation import Limits, Prepared

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
M = TypeVar("M")


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, service: InferenceService) -> None:
        self.service = service

    async def _prepare(self, check: Callable[[M, Limits], Prepared], request: M) -> Prepared:
        return await asyncio.to_thread(check, request, self.service.limits)

    @grpc_errors
    async def Caption(self, request: inference_pb2.CaptionRequest, context: Context) -> inference_pb2.SkillResponse:
        return await self.service.answer(await self._prepare(validation.caption, request))

    @grpc_errors
    async def Query(self, request: inference_pb2.QueryRequest, context: Context) -> inference_pb2.SkillResponse:
        return await self.service.answer(await self._prepare(validation.query, request))

    @grpc_errors
    async def Detect(self, request: inference_pb2.DetectRequest, context: Context) -> inference_pb2.SkillResponse:
        return await self.service.answer(await self._prepare(validation.detect, request))

    @grpc_errors
    async def Point(self, request: inference_pb2.PointRequest, context: Context) -> inference_pb2.SkillResponse:
        return await self.service.answer(await self._prepare(validation.point, request))

    @grpc_errors
    async def Chat(self, request: inference_pb2.ChatRequest, context: Context) -> inference_pb2.SkillResponse:
        return await self.service.answer(await self._prepare(validation.chat, request))

    @grpc_errors  # type: ignore[type-var]  # grpc_errors keeps async generators generators
    async def Stream(self, request: inference_pb2.StreamRequest,
                     context: Context) -> AsyncIterator[inference_pb2.TextChunk]:
        which = request.WhichOneof("skill")
        if which == "caption":
            prepared = await self._prepare(validation.caption, request.caption)
        elif which == "query":
            prepared = await self._prepare(validation.query, request.query)
        elif which == "chat":
            prepared = await self._prepare(validation.chat, request.chat)
        else:
            raise InvalidArgument("set one of caption, query or chat: those skills stream text")
        async for chunk in self.service.stream(prepared):
            yield chunk

    async def ListLoaded(self, request: inference_pb2.ListLoadedRequest,
                         context: Context) -> inference_pb2.ListLoadedResponse:
        return await self.service.list_loaded()


def _refuse(skill: str) -> Callable[..., Awaitable[None]]:
    async def method(self: NoModelServicer, request: object, context: Context) -> None:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{skill}: {self.reason}")

    method.__doc__ = f"UNIMPLEMENTED: {skill} (no model runtime is configured)."
    return method


class NoModelServicer(inference_pb2_grpc.InferenceServiceServicer):
    """Skills answer UNIMPLEMENTED with the reason (e.g. the default checkpoint is not built)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    Caption = _refuse("caption")
    Query = _refuse("query")
    Detect = _refuse("detect")
    Point = _refuse("point")
    Chat = _refuse("chat")
    Stream = _refuse("streaming")

    async def ListLoaded(self, request: inference_pb2.ListLoadedRequest,
                         context: Context) -> inference_pb2.ListLoadedResponse:
        return inference_pb2.ListLoadedResponse()
