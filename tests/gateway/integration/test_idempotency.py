"""`Idempotency-Key` on the skill routes and the gRPC front's skill calls, against the real gateway,
inference and Redis: a retry is answered from the first call (served and recorded once), a key
reused for another call is refused, and what was not answered can be retried for real."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import nats
import pytest

from dreamforge.events import USAGE_RECORDED
from dreamforge.grpcio import channel
from dreamforge.infra import free_port
from dreamforge.v1 import events_pb2, gateway_pb2, gateway_pb2_grpc, inference_pb2
from tests.gateway.conftest import Account, Stack
from tests.gateway.images import PNG, encoded
from tests.helpers import eventually


@pytest.fixture
async def account(stack: Stack) -> Account:
    return await stack.account(scopes=("app",))


@pytest.fixture
async def recorded(stack: Stack, account: Account) -> AsyncIterator[list[str]]:
    """The request ids of the account's `usage.recorded` events, as they are published."""
    ids: list[str] = []
    nc = await nats.connect(stack.nats_url)

    async def collect(msg: Any) -> None:
        ids.append(events_pb2.UsageRecorded.FromString(msg.data).request_id)

    await nc.subscribe(USAGE_RECORDED.subject(account.tenant_id), cb=collect)
    yield ids
    await nc.close()


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"test-{secrets.token_hex(8)}"}


QUERY = {"image_url": PNG, "question": "what colour is the square?"}


async def test_a_retry_gets_the_first_answer_and_is_recorded_once(
        stack: Stack, account: Account, recorded: list[str]) -> None:
    headers = key()
    async with stack.client(account) as c:
        first = await c.post("/v1/query", json=QUERY, headers=headers)
        again = await c.post("/v1/query", json=QUERY, headers={**headers, "X-Request-Id": "my-retry"})
        other = await c.post("/v1/query", json=QUERY, headers=key())  # a new key: a new call
    assert first.status_code == again.status_code == other.status_code == 200, (first.text, again.text)
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-request-id"] == first.headers["x-request-id"] == first.json()["request_id"]
    assert again.headers["x-client-request-id"] == "my-retry"  # the caller's own id, for correlation
    assert "idempotent-replayed" not in first.headers and other.json()["request_id"] != first.json()["request_id"]

    async def both_recorded() -> bool:
        return {first.json()["request_id"], other.json()["request_id"]} <= set(recorded)
    await eventually(both_recorded, timeout_s=15)
    await asyncio.sleep(1.5)  # the relay's longest wait: a second event for the retry would be out by now
    assert sorted(recorded) == sorted([first.json()["request_id"], other.json()["request_id"]])


async def test_a_key_is_bound_to_its_call_and_its_tenant(stack: Stack, account: Account) -> None:
    headers = key()
    async with stack.client(account) as c:
        assert (await c.post("/v1/query", json=QUERY, headers=headers)).status_code == 200
        reused = await c.post("/v1/query", json={**QUERY, "question": "how many shapes are there?"}, headers=headers)
        elsewhere = await c.post("/v1/point", json={"image_url": PNG, "object": "square"}, headers=headers)
    assert reused.status_code == elsewhere.status_code == 422
    assert "`Idempotency-Key` was used before with a different request" in reused.json()["error"]["message"]
    stranger = await stack.account(scopes=("app",))  # another tenant, the same key: its own call
    async with stack.client(stranger) as c:
        theirs = await c.post("/v1/query", json=QUERY, headers=headers)
    assert theirs.status_code == 200 and "idempotent-replayed" not in theirs.headers


async def test_concurrent_calls_with_one_key_are_answered_once(stack: Stack, account: Account) -> None:
    headers = key()
    async with stack.client(account) as c:
        replies = await asyncio.gather(*(c.post("/v1/query", json=QUERY, headers=headers) for _ in range(4)))
    served = [r for r in replies if r.status_code == 200 and "idempotent-replayed" not in r.headers]
    assert len(served) == 1, [(r.status_code, r.text) for r in replies]
    for reply in replies:
        if reply.status_code == 409:
            assert reply.headers["retry-after"] == "1" and "still being answered" in reply.json()["error"]["message"]
        else:
            assert reply.status_code == 200 and reply.json() == served[0].json()


async def test_what_was_not_answered_can_be_retried_and_streams_are_refused(stack: Stack, account: Account) -> None:
    headers = key()
    async with stack.client(account) as c:
        missing = await c.post("/v1/query", json={**QUERY, "model": "no-such-model"}, headers=headers)
        again = await c.post("/v1/query", json={**QUERY, "model": "no-such-model"}, headers=headers)
        fixed = await c.post("/v1/query", json={**QUERY, "model": "no-such-model"}, headers=key())
        stream = await c.post("/v1/query", json={**QUERY, "stream": True}, headers=key())
        bad_key = await c.post("/v1/query", json=QUERY, headers={"Idempotency-Key": "has space"})
        unkeyed_stream = await c.post("/v1/query", json={**QUERY, "stream": True})
    assert missing.status_code == again.status_code == fixed.status_code == 404  # run again, not replayed
    assert "idempotent-replayed" not in again.headers
    assert stream.status_code == 400 and "cannot be used with `\"stream\": true`" in stream.json()["error"]["message"]
    assert bad_key.status_code == 400 and "Idempotency-Key" in bad_key.json()["error"]["message"]
    assert unkeyed_stream.status_code == 200


async def test_a_form_sent_again_matches_its_first_sending(stack: Stack, account: Account) -> None:
    """Each multipart sending has a new boundary; the call is the same, so the retry is a replay."""
    import base64

    png = base64.b64decode(PNG.split(",", 1)[1])
    headers = key()
    async with stack.client(account) as c:
        replies = [await c.post("/v1/detect", files={"image": ("s.png", png, "image/png")},
                                data={"object": "square"}, headers=headers) for _ in range(2)]
    assert [r.status_code for r in replies] == [200, 200], replies[0].text
    assert replies[1].headers["idempotent-replayed"] == "true" and replies[1].json() == replies[0].json()


async def test_without_redis_keyed_calls_are_served_without_the_guarantee(stack: Stack, account: Account) -> None:
    """Redis down: the call is answered (as the rate limit fails open), each sending served, none replayed,
    on either front."""
    from redis.asyncio import Redis

    from services.gateway.app import create_app
    from services.gateway.grpc_front import GatewayServicer
    from services.gateway.http_server import HttpServer

    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    deps = dataclasses.replace(stack.gateway.deps, redis=dead)
    http = HttpServer(create_app(deps), "127.0.0.1", 0)
    front = grpc.aio.server()
    gateway_pb2_grpc.add_GatewayServiceServicer_to_server(GatewayServicer(
        deps.keys, deps.limiter(), deps.registry, deps.inference, quota=deps.quota,
        idempotency=deps.idempotency()), front)
    front_port = front.add_insecure_port("127.0.0.1:0")
    await http.start()
    await front.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}", headers=account.headers,
                                     timeout=30) as c:
            headers = key()
            replies = [await c.post("/v1/query", json=QUERY, headers=headers) for _ in range(2)]
        async with channel(f"127.0.0.1:{front_port}") as ch:
            stub, metadata = gateway_pb2_grpc.GatewayServiceStub(ch), grpc_metadata(account, key()["Idempotency-Key"])
            calls = [stub.Query(GRPC_QUERY, metadata=metadata)]
            grpc_replies = [await calls[0]]
            calls.append(stub.Query(GRPC_QUERY, metadata=metadata))
            grpc_replies.append(await calls[1])
            grpc_metas = [dict(await call.initial_metadata()) for call in calls]
    finally:
        await front.stop(None)
        await http.stop()
        await dead.aclose()
    assert [r.status_code for r in replies] == [200, 200], replies[0].text
    assert replies[0].json()["request_id"] != replies[1].json()["request_id"]
    assert not any("idempotent-replayed" in r.headers for r in replies)
    assert grpc_replies[0].request_id != grpc_replies[1].request_id and grpc_replies[1].text
    assert not any("idempotent-replayed" in m for m in grpc_metas)


def grpc_metadata(account: Account, idempotency_key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {account.key}"), ("idempotency-key", idempotency_key))


GRPC_QUERY = inference_pb2.QueryRequest(image=inference_pb2.Image(data=encoded("PNG")),
                                        question="what colour is the square?")


async def test_a_grpc_retry_gets_the_first_reply_and_is_recorded_once(
        stack: Stack, account: Account, recorded: list[str]) -> None:
    metadata = grpc_metadata(account, key()["Idempotency-Key"])
    batch = gateway_pb2.BatchRequest(calls=[gateway_pb2.BatchCall(query=GRPC_QUERY),
                                            gateway_pb2.BatchCall(point=inference_pb2.PointRequest(
                                                image=GRPC_QUERY.image, object="square"))])
    batch_metadata = grpc_metadata(account, key()["Idempotency-Key"])
    async with channel(stack.grpc_target) as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        first_call = stub.Query(GRPC_QUERY, metadata=metadata)  # a call starts when it is made: one, then the other
        first = await first_call
        again_call = stub.Query(GRPC_QUERY, metadata=(*metadata, ("x-request-id", "my-retry")))
        again = await again_call
        first_meta, again_meta = dict(await first_call.initial_metadata()), dict(await again_call.initial_metadata())
        batched = [await stub.Batch(batch, metadata=batch_metadata) for _ in range(2)]
    assert again == first and first.text
    assert again_meta["x-request-id"] == first_meta["x-request-id"] == first.request_id
    assert again_meta["idempotent-replayed"] == "true" and "idempotent-replayed" not in first_meta
    assert again_meta["x-client-request-id"] == "my-retry"  # the caller's own id, for correlation, replay or not
    assert batched[0] == batched[1] and len(batched[0].results) == 2
    assert all(r.HasField("response") for r in batched[0].results), batched[0]
    served = {first.request_id, *(r.request_id for r in batched[0].results)}

    async def all_recorded() -> bool:
        return served <= set(recorded)
    await eventually(all_recorded, timeout_s=15)
    await asyncio.sleep(1.5)  # the relay's longest wait: a second event for a retry would be out by now
    assert sorted(recorded) == sorted(served)


async def test_a_grpc_key_is_bound_to_its_call_and_not_kept_for_failures(stack: Stack, account: Account) -> None:
    shared = key()["Idempotency-Key"]
    async with channel(stack.grpc_target) as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        await stub.Query(GRPC_QUERY, metadata=grpc_metadata(account, shared))
        refusals: list[tuple[Any, str]] = [
            (stub.Query(inference_pb2.QueryRequest(image=GRPC_QUERY.image, question="how many shapes are there?"),
                        metadata=grpc_metadata(account, shared)), "was used before with a different request"),
            (stub.Detect(inference_pb2.DetectRequest(image=GRPC_QUERY.image, object="square"),
                         metadata=grpc_metadata(account, shared)), "was used before with a different request"),
            (stub.Query(GRPC_QUERY, metadata=grpc_metadata(account, "has space")), "1-200 visible ASCII"),
            (anext(stub.Stream(inference_pb2.StreamRequest(query=GRPC_QUERY),
                               metadata=grpc_metadata(account, key()["Idempotency-Key"])).__aiter__()),
             "cannot be used with `Stream`"),
        ]
        for call, message in refusals:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
            assert message in (info.value.details() or ""), info.value.details()
        missing = inference_pb2.QueryRequest(image=GRPC_QUERY.image, question="what colour is the square?",
                                             model=inference_pb2.Target(reference="no-such-model"))
        failing = grpc_metadata(account, key()["Idempotency-Key"])
        for _ in range(2):  # a failed call is not kept: the retry runs again and fails the same way
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Query(missing, metadata=failing)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND, info.value
    async with stack.client(account) as c:  # one key space per tenant for both fronts
        over_http = await c.post("/v1/query", json=QUERY, headers={"Idempotency-Key": shared})
    assert over_http.status_code == 422, over_http.text


async def test_concurrent_grpc_calls_with_one_key_are_answered_once(stack: Stack, account: Account) -> None:
    metadata = grpc_metadata(account, key()["Idempotency-Key"])
    async with channel(stack.grpc_target) as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        calls = [stub.Query(GRPC_QUERY, metadata=metadata) for _ in range(4)]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        replayed = [dict(await c.initial_metadata()).get("idempotent-replayed") == "true"
                    if not isinstance(o, BaseException) else None for c, o in zip(calls, outcomes, strict=True)]
    served = [o for o, r in zip(outcomes, replayed, strict=True) if r is False]
    assert len(served) == 1, outcomes
    for outcome in outcomes:
        if isinstance(outcome, grpc.aio.AioRpcError):
            assert outcome.code() == grpc.StatusCode.ABORTED and "still being answered" in (outcome.details() or "")
            assert dict(outcome.trailing_metadata() or ())["retry-after"] == "1"
        else:
            assert outcome == served[0]


async def test_a_key_held_by_a_gateway_that_died_mid_call_is_free_after_the_longest_call(redis_url: str) -> None:
    """The claim outlives any call (quota check + inference, each within the backend timeout), and no more."""
    from redis.asyncio import Redis

    from services.gateway.idempotency import PENDING_MARGIN_S, IdempotencyStore, StillRunning

    redis = Redis.from_url(redis_url)
    try:
        store = IdempotencyStore(redis, backend_timeout_s=30.0)
        slot = store.slot("t_dead_gateway", key()["Idempotency-Key"])
        assert await store.claim(slot, "fingerprint") is None  # then the gateway dies: nothing frees the slot
        with pytest.raises(StillRunning):
            await store.claim(slot, "fingerprint")
        assert 60 < await redis.ttl(slot) <= 60 + PENDING_MARGIN_S
    finally:
        await redis.aclose()
