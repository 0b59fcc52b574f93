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
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dreamforge.tracing import client_interceptors


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


def pending(feature: str) -> Callable[..., Awaitable[Any]]:
    """A servicer method for a capability this release does not have yet.

    Answers UNIMPLEMENTED with a message naming the capability (the gateway turns it
    into a 501), never a made-up result."""

    async def method(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED,
                            f"{feature} is not available in this DreamForge release yet")

    method.__doc__ = f"UNIMPLEMENTED: {feature}."
    return method
