"""gRPC plumbing shared by servers and clients: traced channels, health checks, and
turning a Python exception into the right gRPC status.

Services raise `ServiceError` subclasses from their logic; the `grpc_errors`
decorator maps them to status codes with the message intact, so the gateway can
return a 4xx that says what to fix instead of a 500.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dreamforge.tracing import client_interceptors, server_interceptors


class ServiceError(Exception):
    code = grpc.StatusCode.INTERNAL


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def grpc_errors(fn: F) -> F:
    """Abort the RPC with the ServiceError's code and message.

    Works on unary handlers (coroutines) and server-streaming ones (async generators:
    the tracing interceptor iterates those, so the wrapper must stay a generator)."""

    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def stream_wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                async for item in fn(self, request, context):
                    yield item
            except ServiceError as exc:
                await context.abort(exc.code, str(exc))

        return stream_wrapper  # type: ignore[return-value]

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except ServiceError as exc:
            await context.abort(exc.code, str(exc))

    return wrapper  # type: ignore[return-value]


class DecodeRequests(grpc.aio.ServerInterceptor):
    """A request that is not a valid message of its method's type ends INVALID_ARGUMENT, naming the type.

    Why: grpc decodes a request before any handler runs and reports a failure as UNKNOWN
    ("Unexpected DecodeError"), a server error for what is the caller's bad input. This hands the
    handler the raw bytes and decodes them first. Client-streaming methods (only reflection's) and
    handlers that are not coroutines or async generators pass through unchanged.
    """

    async def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer
        message_type = getattr(getattr(decode, "__self__", None), "DESCRIPTOR", None)
        name = message_type.full_name if message_type is not None else "request"

        async def decoded(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            try:
                return decode(raw)
            except DecodeError as exc:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"the request is not a valid {name} message ({exc}); encode it with stubs "
                                    "generated from DreamForge's proto/ files")

        behaviour = handler.unary_stream if handler.response_streaming else handler.unary_unary
        if handler.response_streaming and inspect.isasyncgenfunction(behaviour):
            async def stream(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
                async for reply in behaviour(await decoded(raw, context), context):
                    yield reply

            return grpc.unary_stream_rpc_method_handler(stream, response_serializer=handler.response_serializer)
        if not handler.response_streaming and inspect.iscoroutinefunction(behaviour):
            async def unary(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
                return await behaviour(await decoded(raw, context), context)

            return grpc.unary_unary_rpc_method_handler(unary, response_serializer=handler.response_serializer)
        return handler


def service_interceptors() -> list[Any]:
    """Every service's server interceptors: requests decoded with a clear error, then traced."""
    return [DecodeRequests(), *server_interceptors()]


def channel(target: str) -> grpc.aio.Channel:
    """An insecure (in-cluster) channel whose calls carry the trace context."""
    return grpc.aio.insecure_channel(
        target,
        interceptors=client_interceptors(),
        options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                 ("grpc.max_send_message_length", 64 * 1024 * 1024)],
    )


async def health_status(target: str, service: str = "", timeout_s: float = 1.0) -> str:
    """SERVING / NOT_SERVING / UNKNOWN / UNREACHABLE for the service at `target`."""
    async with grpc.aio.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            return "UNREACHABLE" if exc.code() == grpc.StatusCode.UNAVAILABLE else exc.code().name
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
