"""The public gRPC front (`dreamforge.v1.GatewayService`) on the gateway's gRPC port.

Callers authenticate with metadata `authorization: Bearer <api key>`; the key gives the
tenant and scopes (the `caller` field of a forwarded request is always overwritten).
The same per-key rate limit as HTTP applies. Backend gRPC errors pass through with
their code and message (e.g. UNIMPLEMENTED from inference).
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from dreamforge.v1 import (
    common_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from services.gateway.auth import to_caller
from services.gateway.keys import KeyStore, Principal, Unauthenticated
from services.gateway.ratelimit import RateLimiter
from services.gateway.request_ids import new_request_id

log = logging.getLogger("dreamforge.gateway.grpc")
M = TypeVar("M", bound=Message)


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, keys: KeyStore, limiter: RateLimiter, registry: registry_pb2_grpc.RegistryServiceStub,
                 inference: inference_pb2_grpc.InferenceServiceStub, timeout_s: float = 30.0) -> None:
        self.keys = keys
        self.limiter = limiter
        self.registry = registry
        self.inference = inference
        self.timeout_s = timeout_s

    async def _principal(self, context: grpc.aio.ServicerContext, *any_of: str) -> Principal:
        metadata = {k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
        scheme, _, token = metadata.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await context.abort(grpc.StatusCode.UNAUTHENTICATED,
                                "missing API key: send metadata `authorization: Bearer <key>`")
        try:
            principal = await self.keys.authenticate(token)
        except Unauthenticated as exc:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        if any_of and not any(principal.has_scope(s) for s in any_of):
            needed = " or ".join(f"`{s}`" for s in any_of)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"API key {principal.key_id} lacks the {needed} scope this call requires")
        try:
            decision = await self.limiter.hit(principal)
        except Exception as exc:  # Redis down: fail open, as on HTTP
            log.warning("rate limiter unavailable, call not limited", extra={"error": repr(exc)})
        else:
            if not decision.allowed:
                context.set_trailing_metadata((("retry-after", str(decision.retry_after_s)),))
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"rate limit of {decision.limit_per_minute} requests/minute exceeded for API "
                                    f"key {principal.key_id}; retry in {decision.retry_after_s} s")
        return principal

    async def _forward(self, context: grpc.aio.ServicerContext, call: Any, request: Message) -> Any:
        try:
            return await call(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or exc.code().name)

    async def WhoAmI(self, request: gateway_pb2.WhoAmIRequest,
                     context: grpc.aio.ServicerContext) -> gateway_pb2.WhoAmIResponse:
        who = await self._principal(context)
        return gateway_pb2.WhoAmIResponse(tenant_id=who.tenant_id, key_id=who.key_id, scopes=sorted(who.scopes))

    async def ListModels(self, request: gateway_pb2.PublicListModelsRequest,
                         context: grpc.aio.ServicerContext) -> registry_pb2.ListModelsResponse:
        who = await self._principal(context, "app", "ml")
        page = common_pb2.PageRequest(page_size=request.page_size, page_token=request.page_token)
        reply: registry_pb2.ListModelsResponse = await self._forward(
            context, self.registry.ListModels, registry_pb2.ListModelsRequest(caller=to_caller(who), page=page))
        return reply

    async def GetModel(self, request: gateway_pb2.PublicGetModelRequest,
                       context: grpc.aio.ServicerContext) -> registry_pb2.Model:
        who = await self._principal(context, "app", "ml")
        model: registry_pb2.Model = await self._forward(
            context, self.registry.GetModel, registry_pb2.GetModelRequest(caller=to_caller(who), model=request.model))
        return model

    async def _skill(self, request: M, context: grpc.aio.ServicerContext, call: Any) -> inference_pb2.SkillResponse:
        who = await self._principal(context, "app")
        forwarded = type(request)()
        forwarded.CopyFrom(request)
        forwarded.caller.CopyFrom(to_caller(who))
        if not forwarded.request_id:
            forwarded.request_id = new_request_id()
        result: inference_pb2.SkillResponse = await self._forward(context, call, forwarded)
        return result

    async def Caption(self, request: inference_pb2.CaptionRequest,
                      context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        return await self._skill(request, context, self.inference.Caption)

    async def Query(self, request: inference_pb2.QueryRequest,
                    context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        return await self._skill(request, context, self.inference.Query)

    async def Detect(self, request: inference_pb2.DetectRequest,
                     context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        return await self._skill(request, context, self.inference.Detect)

    async def Point(self, request: inference_pb2.PointRequest,
                    context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        return await self._skill(request, context, self.inference.Point)
