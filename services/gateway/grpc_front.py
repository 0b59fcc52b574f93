"""The public gRPC front (`dreamforge.v1.GatewayService`) on the gateway's gRPC port.

Callers authenticate with metadata `authorization: Bearer <api key>`; the key gives the
tenant and scopes (the `caller` field of a forwarded request is always overwritten).
The same per-key rate limit as HTTP applies. Skill calls go through the same
`SkillService` as REST: images and texts are checked first (INVALID_ARGUMENT naming the
field), every call gets a new request id from the gateway (sent back as `x-request-id`
metadata; it names the recorded, billed output, so callers cannot choose it: see
request_ids.py), and a sane `request_id` field or `x-request-id` metadata of the caller's
comes back as `x-client-request-id`. With metadata `idempotency-key` a unary skill call,
`Batch` or `Compare` is answered once (idempotency.py): a retry gets the first response back with
the first request id and metadata `idempotent-replayed: true`. Backend gRPC errors pass through
with their code and message; in `Batch` and `Compare` (REST's /v1/batch and /v1/compare)
each call's error is its result, as `CallError`, and the other calls still answer.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from redis.exceptions import RedisError

from dreamforge.grpcio import InvalidArgument, ServiceError
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
from services.gateway.idempotency import HEADER as IDEMPOTENCY_KEY
from services.gateway.idempotency import REPLAYED_HEADER, Answer, IdempotencyStore, KeyReused, StillRunning, sane_key
from services.gateway.keys import KeyStore, Principal, Unauthenticated
from services.gateway.ratelimit import RateLimiter
from services.gateway.request_ids import new_request_id, sane_client_id
from services.gateway.skills import (
    MAX_BATCH_CALLS,
    MAX_COMPARE_MODELS,
    Outcome,
    QuotaCheck,
    Skill,
    SkillCall,
    SkillService,
    call_from_message,
    check_model,
    message,
)

log = logging.getLogger("dreamforge.gateway.grpc")
_T = TypeVar("_T")
_Reply = TypeVar("_Reply", inference_pb2.SkillResponse, gateway_pb2.BatchResponse)  # replies kept for a retry


class GatewayServicer(gateway_pb2_grpc.GatewayServiceServicer):
    def __init__(self, keys: KeyStore, limiter: RateLimiter, registry: registry_pb2_grpc.RegistryServiceStub,
                 inference: inference_pb2_grpc.InferenceServiceStub, timeout_s: float = 30.0,
                 quota: QuotaCheck | None = None, idempotency: IdempotencyStore | None = None) -> None:
        self.keys = keys
        self.idempotency = idempotency
        self.limiter = limiter
        self.registry = registry
        self.inference = inference
        self.timeout_s = timeout_s
        self.skills = SkillService(inference, timeout_s, quota=quota)

    async def _principal(self, context: grpc.aio.ServicerContext, *any_of: str) -> Principal:
        scheme, _, token = (_metadata(context, "authorization") or "").partition(" ")
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

    @staticmethod
    def _client_request_id(request: Message, context: grpc.aio.ServicerContext) -> str:
        """The caller's own id for correlation: the request's `request_id`, else metadata `x-request-id` (sane only)."""
        own = getattr(request, "request_id", "")
        return sane_client_id(own) or sane_client_id(_metadata(context, "x-request-id") or "")

    async def _send_request_id(self, request: Message, context: grpc.aio.ServicerContext,
                               replayed_id: str = "") -> str:
        """A new request id (or a replayed answer's own) as `x-request-id`, the caller's as `x-client-request-id`."""
        request_id = replayed_id or new_request_id()
        client_id = self._client_request_id(request, context)
        await context.send_initial_metadata((("x-request-id", request_id),
                                             *((("x-client-request-id", client_id),) if client_id else ()),
                                             *(((REPLAYED_HEADER, "true"),) if replayed_id else ())))
        return request_id

    async def _checked(self, context: grpc.aio.ServicerContext, build: Callable[[], _T]) -> _T:
        """`build()` (which decodes images) in a worker thread; its InvalidArgument ends the call."""
        try:
            return await asyncio.to_thread(build)
        except ServiceError as exc:
            await context.abort(exc.code, str(exc))
            raise  # unreachable: abort raises

    async def _call(self, skill: Skill, request: Message, context: grpc.aio.ServicerContext,
                    request_id: str | None = None) -> SkillCall:
        request_id = request_id or await self._send_request_id(request, context)
        return await self._checked(context, lambda: call_from_message(skill, request, request_id))

    async def _answered_once(self, who: Principal, request: Message, context: grpc.aio.ServicerContext,
                             answer: Callable[[str], Awaitable[_Reply]], reply_type: type[_Reply]) -> _Reply:
        """`answer(request_id)`, once per `idempotency-key` of the tenant's: a retry gets the first reply back."""
        key = _metadata(context, IDEMPOTENCY_KEY)
        if self.idempotency is None or key is None:
            return await answer(await self._send_request_id(request, context))
        if not sane_key(key):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "metadata `idempotency-key` must be 1-200 visible ASCII characters (a UUID is usual)")
        store = self.idempotency
        slot = store.slot(who.tenant_id, key)
        fingerprint = store.fingerprint(request.DESCRIPTOR.full_name, request.SerializeToString(deterministic=True))
        try:
            earlier = await store.claim(slot, fingerprint)
        except KeyReused:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "metadata `idempotency-key` was used before with a "
                                                                  "different request: use a new key for a new call")
        except StillRunning:
            context.set_trailing_metadata((("retry-after", "1"),))
            await context.abort(grpc.StatusCode.ABORTED,
                                "a call with this `idempotency-key` is still being answered; retry in a moment")
        except RedisError as exc:
            log.warning("idempotency store unavailable, call served without it", extra={"error": repr(exc)})
            return await answer(await self._send_request_id(request, context))
        if earlier is not None:
            await self._send_request_id(request, context, replayed_id=earlier.request_id)
            return reply_type.FromString(base64.b64decode(earlier.body))

        async def run() -> _Reply:
            return await answer(await self._send_request_id(request, context))

        def kept(reply: _Reply) -> Answer:
            body = base64.b64encode(reply.SerializeToString()).decode()
            return Answer(reply.request_id, "application/x-protobuf", body)

        return await store.answer_once(slot, fingerprint, run, kept)

    async def _skill(self, skill: Skill, request: Message,
                     context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        who = await self._principal(context, "app")

        async def answer(request_id: str) -> inference_pb2.SkillResponse:
            call = await self._call(skill, request, context, request_id)
            try:
                return await self.skills.run(to_caller(who), call)
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or exc.code().name)
            except ServiceError as exc:
                await context.abort(exc.code, str(exc))
            raise AssertionError("unreachable")

        return await self._answered_once(who, request, context, answer, inference_pb2.SkillResponse)

    async def Caption(self, request: inference_pb2.CaptionRequest,
                      context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        return await self._skill("caption", request, context)

    async def Query(self, request: inference_pb2.QueryRequest,
                    context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        return await self._skill("query", request, context)

    async def Detect(self, request: inference_pb2.DetectRequest,
                     context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        return await self._skill("detect", request, context)

    async def Point(self, request: inference_pb2.PointRequest,
                    context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        return await self._skill("point", request, context)

    async def Chat(self, request: inference_pb2.ChatRequest,
                   context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        return await self._skill("chat", request, context)

    async def Stream(self, request: inference_pb2.StreamRequest,
                     context: grpc.aio.ServicerContext) -> AsyncIterator[inference_pb2.TextChunk]:
        who = await self._principal(context, "app")
        if _metadata(context, IDEMPOTENCY_KEY) is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "metadata `idempotency-key` cannot be used with `Stream`: a stream is not kept to be "
                                "replayed; send the call without the key, or as a unary call")
        which = request.WhichOneof("skill")
        if which is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "request field `skill`: set one of caption, query or chat")
        call = await self._call(which, getattr(request, which), context)  # type: ignore[arg-type]
        chunks: AsyncIterator[inference_pb2.TextChunk] | None = None
        try:
            chunks = await self.skills.stream(to_caller(who), call)
            async for chunk in chunks:
                yield chunk
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or exc.code().name)
        except ServiceError as exc:
            await context.abort(exc.code, str(exc))
        finally:  # the caller cancelled (or we are done): cancel the inference stream now
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _run_many(self, request: Message, context: grpc.aio.ServicerContext, field: str, count: int,
                        limit: int, build: Callable[[str], list[SkillCall]]) -> gateway_pb2.BatchResponse:
        """Batch and Compare: `build(request_id)` makes the checked calls, which run at once."""
        who = await self._principal(context, "app")
        if not 1 <= count <= limit:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"request field `{field}`: send 1-{limit} (got {count})")

        async def answer(request_id: str) -> gateway_pb2.BatchResponse:
            calls = await self._checked(context, lambda: build(request_id))
            return batch_response(request_id, await self.skills.run_many(to_caller(who), calls))

        return await self._answered_once(who, request, context, answer, gateway_pb2.BatchResponse)

    async def Batch(self, request: gateway_pb2.BatchRequest,
                    context: grpc.aio.ServicerContext) -> gateway_pb2.BatchResponse:
        def build(request_id: str) -> list[SkillCall]:
            calls = []
            for i, item in enumerate(request.calls):
                skill, inner = unary_call(item, f"calls[{i}]")
                calls.append(call_from_message(skill, inner, f"{request_id}.{i}", f"calls[{i}].{skill}."))
            return calls

        return await self._run_many(request, context, "calls", len(request.calls), MAX_BATCH_CALLS, build)

    async def Compare(self, request: gateway_pb2.CompareRequest,
                      context: grpc.aio.ServicerContext) -> gateway_pb2.BatchResponse:
        def build(request_id: str) -> list[SkillCall]:
            skill, inner = unary_call(request.call, "call")
            checked = call_from_message(skill, inner, request_id, f"call.{skill}.")  # the image is decoded once
            return [replace(checked, request_id=f"{request_id}.{i}", model=check_model(model, message(f"models[{i}]")))
                    for i, model in enumerate(request.models)]

        return await self._run_many(request, context, "models", len(request.models), MAX_COMPARE_MODELS, build)


def _metadata(context: grpc.aio.ServicerContext, name: str) -> str | None:
    """The caller's text metadata `name` (lower case), or None."""
    for key, value in context.invocation_metadata() or ():
        if key.lower() == name and isinstance(value, str):
            return value
    return None


def unary_call(item: gateway_pb2.BatchCall, label: str) -> tuple[Skill, Message]:
    """The skill and request message a `BatchCall` holds; InvalidArgument naming `label` when it holds none."""
    skill = item.WhichOneof("skill")
    if skill is None:
        raise InvalidArgument(f"{message(label)}: set one of caption, query, detect or point")
    return skill, getattr(item, skill)  # type: ignore[return-value]


def batch_response(request_id: str, outcomes: list[Outcome]) -> gateway_pb2.BatchResponse:
    """Each outcome as its answer or its `CallError`, in order."""
    results = []
    for outcome in outcomes:
        failure, reference = outcome.failure, outcome.call.model
        if failure is not None:
            error = gateway_pb2.CallError(code=failure.grpc_code.value[0], message=failure.message)
            results.append(gateway_pb2.BatchResult(request_id=failure.request_id, reference=reference, error=error))
        else:
            results.append(gateway_pb2.BatchResult(request_id=outcome.call.request_id, reference=reference,
                                                   response=outcome.response))
    return gateway_pb2.BatchResponse(request_id=request_id, results=results)
