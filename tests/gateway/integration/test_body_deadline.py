"""A body that stops arriving ends in a 408 that says so; a slow but steady one is served."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator

import pytest

from services.gateway.app import create_app
from services.gateway.http_server import HttpServer
from tests.gateway.conftest import Account, Stack
from tests.gateway.images import PNG


@pytest.fixture
async def impatient_gateway(stack: Stack) -> AsyncIterator[int]:
    """A gateway on the stack's services that waits 0.5 s for each chunk of a body; its port."""
    deps = stack.gateway.deps
    settings = deps.settings.model_copy(update={"body_timeout_s": 0.5})
    http = HttpServer(create_app(dataclasses.replace(deps, settings=settings)), "127.0.0.1", 0)
    await http.start()
    yield http.port
    await http.stop()


def head(account: Account, length: int) -> bytes:
    return (f"POST /v1/query HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {account.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


async def test_a_body_that_stops_arriving_is_a_408_and_a_steady_one_is_served(
        stack: Stack, impatient_gateway: int) -> None:
    account = await stack.account(scopes=("app",))
    body = json.dumps({"image_url": PNG, "question": "what colour is the square?"}).encode()

    reader, writer = await asyncio.open_connection("127.0.0.1", impatient_gateway)
    writer.write(head(account, len(body)) + body[:20])  # then nothing more
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), timeout=3)  # answered and closed, not kept alive (5 s)
    writer.close()
    status, _, rest = reply.partition(b"\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", reply
    error = json.loads(rest.partition(b"\r\n\r\n")[2])["error"]
    assert error["code"] == "request_timeout" and "body stopped arriving (nothing for 0.5 s)" in error["message"]

    reader, writer = await asyncio.open_connection("127.0.0.1", impatient_gateway)
    writer.write(head(account, len(body)))
    pieces = [body[i:i + len(body) // 4 + 1] for i in range(0, len(body), len(body) // 4 + 1)]
    for piece in pieces:  # 4 pieces 0.3 s apart: longer than the deadline in all, never between two pieces
        await asyncio.sleep(0.3)
        writer.write(piece)
        await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=30)
    writer.close()
    assert status_line == b"HTTP/1.1 200 OK\r\n"
