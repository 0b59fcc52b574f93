"""The gRPC front under fuzzed input: no server-error status, whatever the caller sends.

The HTTP API is fuzzed from its OpenAPI document (tests/platform/test_fuzz.py); gRPC has no such
document, so this fills each GatewayService method's request message at random from its
descriptor (seeded: missing, empty, huge, odd and valid values; images valid, empty or broken;
nested and repeated fields), and also sends bytes that are no message at all. Every answer must be
OK or a status that blames the request (INVALID_ARGUMENT, NOT_FOUND, ...), never UNKNOWN, INTERNAL,
UNAVAILABLE or a deadline; and enough calls must succeed that the fuzz reaches inference.
"""

from __future__ import annotations

import collections
import random
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from dreamforge.grpcio import channel
from dreamforge.v1 import gateway_pb2
from tests.gateway.conftest import Stack
from tests.gateway.images import encoded

SERVER_ERRORS = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE,
                 grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.DATA_LOSS}
IMAGES = [b"", encoded("PNG"), encoded("JPEG"), encoded("WEBP"), encoded("PNG", (1, 1)),
          b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, encoded("PNG")[:40]]
TEXTS = ["", " ", "default", "default@production", "nope@7", "a@b@c", "x" * 301, "red square", "\x00", "ü",
         "short", "normal", "long", "user", "assistant", "system", "what colour is the square?"]
NUMBERS = [0, -1, 1, 2, 512, 513, 2**31 - 1]
FLOATS = [0.0, -1.0, 0.5, 2.0, 1e308, float("nan")]


def fill(message: Message, rnd: random.Random, depth: int = 0) -> None:
    """Sets a random subset of `message`'s fields (one member of each oneof, at most) to random values."""
    oneofs_set: set[str] = set()
    for field in message.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if rnd.random() < 0.3 or (oneof is not None and oneof.name in oneofs_set):
            continue
        if oneof is not None:
            oneofs_set.add(oneof.name)
        if field.is_repeated:
            for _ in range(rnd.choice([0, 1, 2, 5, 20])):
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    if depth < 4:
                        fill(getattr(message, field.name).add(), rnd, depth + 1)
                else:
                    getattr(message, field.name).append(scalar(field, rnd))
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth < 4:
                getattr(message, field.name).SetInParent()
                fill(getattr(message, field.name), rnd, depth + 1)
        else:
            setattr(message, field.name, scalar(field, rnd))


def scalar(field: FieldDescriptor, rnd: random.Random) -> Any:
    kind = field.type
    if kind == FieldDescriptor.TYPE_BYTES:
        return rnd.choice(IMAGES)
    if kind == FieldDescriptor.TYPE_STRING:
        return rnd.choice(TEXTS)
    if kind == FieldDescriptor.TYPE_BOOL:
        return rnd.random() < 0.5
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rnd.choice(FLOATS)
    if kind == FieldDescriptor.TYPE_ENUM:
        return rnd.choice([v.number for v in field.enum_type.values])
    return rnd.choice(NUMBERS)


async def test_no_fuzzed_request_gets_a_server_error(stack: Stack) -> None:
    account = await stack.account(scopes=("app", "ml"), rate_limit_per_minute=1_000_000)
    metadata = (("authorization", f"Bearer {account.key}"),)
    rnd = random.Random(7)
    methods = list(gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].methods)
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    server_errors = []
    async with channel(stack.grpc_target) as ch:
        for i in range(1600):
            method = rnd.choice(methods)
            path = f"/{method.containing_service.full_name}/{method.name}"
            if i % 8 == 0:  # bytes that are no message of any type
                request = rnd.randbytes(rnd.choice([1, 3, 40]))
            else:
                message = message_factory.GetMessageClass(method.input_type)()
                fill(message, rnd)
                request = message.SerializeToString()
            try:
                if method.server_streaming:
                    async for _ in ch.unary_stream(path)(request, metadata=metadata, timeout=30):
                        pass
                else:
                    await ch.unary_unary(path)(request, metadata=metadata, timeout=30)
                outcomes[(method.name, "OK")] += 1
            except grpc.aio.AioRpcError as exc:
                outcomes[(method.name, exc.code().name)] += 1
                if exc.code() in SERVER_ERRORS:
                    server_errors.append((path, exc.code(), exc.details(), request[:200]))
    assert server_errors == [], server_errors[:5]
    for skill in ("Caption", "Query", "Detect", "Point", "Stream", "Batch", "Compare"):
        assert outcomes[(skill, "OK")] > 0, sorted(outcomes.items())  # the fuzz reached inference
