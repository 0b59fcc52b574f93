"""The WebSocket relay: a tenant sees its own `model.updated` events (made by the real
registry through its outbox) and never another tenant's; filters; refused handshakes."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from services.gateway.keys import parse_key
from tests.gateway.conftest import Account, Stack


def ws_url(stack: Stack, query: str = "") -> str:
    return stack.base_url.replace("http://", "ws://") + "/v1/events/ws" + (f"?{query}" if query else "")


async def promote(stack: Stack, account: Account, model: str) -> None:
    async with stack.client(account) as c:
        assert (await c.post("/v1/models", json={"name": model})).status_code == 201
        assert (await c.post(f"/v1/models/{model}/versions", json={})).status_code == 201
        assert (await c.post(f"/v1/models/{model}/promote", json={"version": 1})).status_code == 200


async def frames_until(socket: Any, predicate: Any, timeout_s: float = 10) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout_s):
        while True:
            frame = json.loads(await socket.recv())
            seen.append(frame)
            if predicate(frame):
                return seen


async def test_each_tenant_gets_only_its_own_events(stack: Stack) -> None:
    a, b = await stack.account(), await stack.account()
    async with websockets.connect(ws_url(stack, f"api_key={a.key}")) as sock_a, \
            websockets.connect(ws_url(stack, "types=model.updated"), additional_headers=b.headers) as sock_b:
        hello_a = json.loads(await sock_a.recv())
        assert hello_a == {"type": "subscribed", "tenant_id": a.tenant_id, "types": ["*"]}
        assert json.loads(await sock_b.recv())["types"] == ["model.updated"]
        await promote(stack, b, "b-model")
        await promote(stack, a, "a-model")
        seen_a = await frames_until(sock_a, lambda f: f["event"].get("model_name") == "a-model")
        seen_b = await frames_until(sock_b, lambda f: f["event"].get("model_name") == "b-model")
        # A's "a-model" event arrives after B's promote was published: had B's leaked, A would hold it
        assert all(f["event"]["meta"]["tenant_id"] == a.tenant_id for f in seen_a)
        assert all(f["event"]["meta"]["tenant_id"] == b.tenant_id for f in seen_b)
        event = seen_a[-1]
        assert event["type"] == "model.updated"
        assert event["subject"] == f"dreamforge.v1.model.updated.{a.tenant_id}"
        assert event["event"]["alias"] == "production" and event["event"]["version"] == 1


async def test_query_string_keys_never_reach_the_logs(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    a = await stack.account()
    with caplog.at_level(logging.INFO):
        async with websockets.connect(ws_url(stack, f"api_key={a.key}")) as sock:
            await sock.recv()
        with pytest.raises(InvalidStatus):
            async with websockets.connect(ws_url(stack, f"api_key={a.key}x")):
                pass
    assert "api_key=***" in caplog.text
    _key_id, secret = parse_key(a.key)
    assert a.key not in caplog.text and secret not in caplog.text


async def test_disconnect_unsubscribes(stack: Stack) -> None:
    a = await stack.account()
    nc = stack.gateway.deps.bus.nc
    before = len(nc._subs)
    async with websockets.connect(ws_url(stack, f"api_key={a.key}")) as sock:
        await sock.recv()
        assert len(nc._subs) == before + 1
    for _ in range(100):
        if len(nc._subs) == before:
            break
        await asyncio.sleep(0.02)
    assert len(nc._subs) == before


@pytest.mark.parametrize("query", ["", "api_key=df_0000000000000000_xxxxxxxxxxxxxxxxxxxxxxxxx", "api_key=junk"])
async def test_handshake_without_a_valid_key_is_refused(stack: Stack, query: str) -> None:
    with pytest.raises(InvalidStatus):
        async with websockets.connect(ws_url(stack, query)) as sock:
            await sock.recv()


async def test_unknown_event_type_is_refused(stack: Stack) -> None:
    a = await stack.account()
    with pytest.raises(InvalidStatus):
        async with websockets.connect(ws_url(stack, f"api_key={a.key}&types=model.exploded")) as sock:
            await sock.recv()
