"""The inference service over gRPC, running for real next to a real registry and JetStream:
every skill, streaming, validation messages, the built-in default model, and exactly one
`inference.completed` + one `usage.recorded` per served request (retries and re-publishes
included). Plumbing on the tiny random model; answer correctness is test_correctness.py."""

from __future__ import annotations

import asyncio
import io
import secrets
from collections import Counter
from pathlib import Path

import grpc
import nats
import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from dreamforge.events import INFERENCE_COMPLETED, USAGE_RECORDED, EventType
from dreamforge.image_store import ImageStore
from dreamforge.v1 import common_pb2, events_pb2, inference_pb2, inference_pb2_grpc, registry_pb2, registry_pb2_grpc
from tests.helpers import eventually
from tests.inference.conftest import Platform, image_of

Stub = inference_pb2_grpc.InferenceServiceStub


def tenant() -> str:
    return f"t_{secrets.token_hex(4)}"


async def published(nats_url: str, event: EventType, tenant_id: str) -> list[events_pb2.UsageRecorded]:
    """Every message of `event` for `tenant_id` stored in JetStream, decoded."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(event.stream, subjects_filter=event.subject(tenant_id))
        expected = sum((info.state.subjects or {}).values())
        out = []
        if expected:
            sub = await js.subscribe(event.subject(tenant_id), ordered_consumer=True)
            for _ in range(expected):
                out.append(event.payload.FromString((await sub.next_msg(timeout=5)).data))
            await sub.unsubscribe()
        return out  # type: ignore[return-value]
    finally:
        await nc.close()


async def test_every_skill_answers_for_a_fresh_tenant_with_the_default_model(stack: Platform, inference_stub: Stub,
                                                                             ) -> None:
    caller = stack.caller(tenant())
    image = image_of(0)
    replies = [
        await inference_stub.Caption(inference_pb2.CaptionRequest(caller=caller, image=image, length="short")),
        await inference_stub.Query(inference_pb2.QueryRequest(caller=caller, image=image, question="is there a star?")),
        await inference_stub.Detect(inference_pb2.DetectRequest(caller=caller, image=image, object="red circle")),
        await inference_stub.Point(inference_pb2.PointRequest(caller=caller, image=image, object="circle")),
        await inference_stub.Chat(inference_pb2.ChatRequest(caller=caller, max_tokens=6, messages=[
            inference_pb2.ChatMessage(role="system", text="be brief"),
            inference_pb2.ChatMessage(role="user", text="hello", images=[image]),
            inference_pb2.ChatMessage(role="assistant", text="hi"),
            inference_pb2.ChatMessage(role="user", text="how many shapes are there?")])),
    ]
    for reply in replies:
        assert (reply.model_id, reply.version, reply.alias) == ("default", 0, "default")  # the built-in fallback
        assert reply.text and reply.request_id.startswith("req_")
        assert reply.input_tokens > 0 and reply.output_tokens > 0 and reply.latency_ms > 0
    assert replies[-1].output_tokens <= 6
    capped = await inference_stub.Caption(inference_pb2.CaptionRequest(caller=caller, image=image, max_tokens=2))
    assert 0 < capped.output_tokens <= 2 and capped.text
    assert all(0 <= v <= 1 for b in replies[2].objects for v in (b.x_min, b.y_min, b.x_max, b.y_max))
    assert all(0 <= v <= 1 for p in replies[3].points for v in (p.x, p.y))


async def test_stream_chunks_concatenate_to_the_unary_answer(stack: Platform, inference_stub: Stub) -> None:
    caller = stack.caller(tenant())
    query = inference_pb2.QueryRequest(caller=caller, request_id="s-unary", image=image_of(1),
                                       question="what colour is the circle?")
    unary = await inference_stub.Query(query)
    query.request_id = "s-stream"
    chunks = [chunk async for chunk in inference_stub.Stream(inference_pb2.StreamRequest(query=query))]
    assert len(chunks) > 2 and chunks[-1].completed and not any(c.completed for c in chunks[:-1])
    final = chunks[-1].final
    assert "".join(c.text for c in chunks[:-1]) == unary.text == final.text
    assert (final.request_id, final.input_tokens, final.output_tokens) == \
        ("s-stream", unary.input_tokens, unary.output_tokens)
    caption = inference_pb2.CaptionRequest(caller=caller, image=image_of(1), length="short")
    chunks = [chunk async for chunk in inference_stub.Stream(inference_pb2.StreamRequest(caption=caption))]
    assert "".join(c.text for c in chunks[:-1]) == chunks[-1].final.text


def _png(width: int, height: int, noise: bool = False) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8) if noise \
        else np.full((height, width, 3), 200, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(("call", "words"), [
    (lambda c: inference_pb2.CaptionRequest(caller=c), "image is empty"),
    (lambda c: inference_pb2.CaptionRequest(caller=c, image=inference_pb2.Image(data=b"GIF89a not really")),
     "could not be decoded"),
    (lambda c: inference_pb2.CaptionRequest(caller=c, image=inference_pb2.Image(data=_png(300, 300, noise=True))),
     "limit is 200000 bytes"),
    (lambda c: inference_pb2.CaptionRequest(caller=c, image=inference_pb2.Image(data=_png(1100, 1000))),
     "limit is 1000000 pixels"),
    (lambda c: inference_pb2.CaptionRequest(caller=c, image=image_of(0), length="epic"), "short, normal, long"),
    (lambda c: inference_pb2.QueryRequest(caller=c, image=image_of(0), question="   "), "question is empty"),
    (lambda c: inference_pb2.QueryRequest(caller=c, image=image_of(0), question="why" * 700), "limit is 2000"),
    (lambda c: inference_pb2.DetectRequest(caller=c, image=image_of(0)), "object is empty"),
    (lambda c: inference_pb2.PointRequest(caller=c, image=image_of(0), object="x" * 201), "limit is 200"),
    (lambda c: inference_pb2.ChatRequest(caller=c, messages=[inference_pb2.ChatMessage(role="user", text="hi")]),
     "no image"),
    (lambda c: inference_pb2.ChatRequest(caller=c, messages=[inference_pb2.ChatMessage(role="robot", text="x")]),
     "role"),
    (lambda c: inference_pb2.QueryRequest(caller=common_pb2.Caller(), image=image_of(0), question="q?"),
     "tenant_id is required"),
    (lambda c: inference_pb2.QueryRequest(caller=c, request_id="bad id!", image=image_of(0), question="q?"),
     "request_id"),
    (lambda c: inference_pb2.StreamRequest(), "set one of caption, query or chat"),
    (lambda c: inference_pb2.CaptionRequest(caller=c, image=image_of(0), max_tokens=513), "max_tokens must be"),
    (lambda c: inference_pb2.QueryRequest(caller=c, image=image_of(0), question="q?", max_tokens=-1), "max_tokens"),
    (lambda c: inference_pb2.DetectRequest(caller=c, image=image_of(0), object="x", max_objects=-2), "max_objects"),
])
async def test_bad_requests_say_what_to_fix(stack: Platform, inference_stub: Stub, call, words: str) -> None:  # type: ignore[no-untyped-def]
    request = call(stack.caller("t_invalid"))
    method = {inference_pb2.CaptionRequest: inference_stub.Caption, inference_pb2.QueryRequest: inference_stub.Query,
              inference_pb2.DetectRequest: inference_stub.Detect, inference_pb2.PointRequest: inference_stub.Point,
              inference_pb2.ChatRequest: inference_stub.Chat}.get(type(request))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        if method is None:
            [chunk async for chunk in inference_stub.Stream(request)]
        else:
            await method(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in (err.value.details() or "")


async def test_unknown_model_references_are_not_found(stack: Platform, inference_stub: Stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inference_stub.Query(inference_pb2.QueryRequest(
            caller=stack.caller(tenant()), model=inference_pb2.Target(reference="nope@production"),
            image=image_of(0), question="is there a star?"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in (err.value.details() or "")


async def test_each_served_request_is_counted_exactly_once(stack: Platform, inference_stub: Stub) -> None:
    caller = stack.caller(tenant())
    requests = [inference_pb2.QueryRequest(caller=caller, request_id=f"{caller.tenant_id}-{i}", image=image_of(i),
                                           question="how many shapes are there?") for i in range(4)]
    replies = await asyncio.gather(*(inference_stub.Query(r) for r in requests))
    await inference_stub.Query(requests[0])  # a client retry of the same request
    stream = inference_pb2.StreamRequest(caption=inference_pb2.CaptionRequest(
        caller=caller, request_id=f"{caller.tenant_id}-s", image=image_of(0), length="short"))
    [chunk async for chunk in inference_stub.Stream(stream)]
    ids = {r.request_id for r in requests} | {f"{caller.tenant_id}-s"}

    async def both_published() -> bool:
        usage = await published(stack.nats_url, USAGE_RECORDED, caller.tenant_id)
        completed = await published(stack.nats_url, INFERENCE_COMPLETED, caller.tenant_id)
        return len(usage) >= len(ids) and len(completed) >= len(ids)

    await eventually(both_published)
    # a crash between publish and mark-sent: the relay publishes the same rows again
    outbox = stack.inference.outbox
    async with outbox.db.transaction() as conn:
        await conn.execute(outbox.table.update().values(published_at=None))
    assert await outbox.publish_pending(stack.runtime.bus) >= 2 * len(ids)
    usage = await published(stack.nats_url, USAGE_RECORDED, caller.tenant_id)
    completed = await published(stack.nats_url, INFERENCE_COMPLETED, caller.tenant_id)
    assert Counter(u.request_id for u in usage) == Counter(ids)
    assert Counter(c.request_id for c in completed) == Counter(ids)
    by_id = {u.request_id: u for u in usage}
    for reply in replies:
        u = by_id[reply.request_id]
        assert (u.input_tokens, u.output_tokens, u.images, u.skill, u.model_id, u.key_id) == \
            (reply.input_tokens, reply.output_tokens, 1, "query", "default", "k_test")
        assert u.meta.event_id == f"{reply.request_id}:usage"
    c = next(c for c in completed if c.request_id == requests[1].request_id)
    assert (c.skill, c.prompt, c.meta.event_id) == ("query", "how many shapes are there?",
                                                    f"{requests[1].request_id}:completed")
    assert len(c.image_ref) == 64 and '"text"' in c.output_json
    # the image an event names was stored before the event existed (the write overlaps generation)
    store = ImageStore(stack.inference.settings.home / "images")
    assert store.load_bytes(caller.tenant_id, c.image_ref) == requests[1].image.data
    rows = await _outbox_rows(stack, ids)
    assert rows == 2 * len(ids)


async def _outbox_rows(stack: Platform, ids: set[str]) -> int:
    outbox = stack.inference.outbox
    event_ids = [f"{i}:{kind}" for i in ids for kind in ("usage", "completed")]
    async with outbox.db.engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(outbox.table).where(
            outbox.table.c.event_id.in_(event_ids)))).scalar_one())


async def test_list_loaded_reports_the_budget(stack: Platform, inference_stub: Stub) -> None:
    loaded = await inference_stub.ListLoaded(inference_pb2.ListLoadedRequest())
    assert loaded.memory_budget_bytes == stack.inference.settings.adapter_memory_budget_bytes


async def test_registry_models_name_their_base_checkpoint_within_allowed_roots(
        stack: Platform, inference_stub: Stub, registry_stub: registry_pb2_grpc.RegistryServiceStub,
        tiny_model_dir: Path) -> None:
    caller = stack.caller(tenant())
    for name, base in (("local", str(tiny_model_dir)), ("escape", "/etc"), ("sneaky", "../../../../etc")):
        await registry_stub.CreateModel(registry_pb2.CreateModelRequest(caller=caller, name=name, base_checkpoint=base))
        await registry_stub.CreateVersion(registry_pb2.CreateVersionRequest(caller=caller, model=name))
        await registry_stub.Promote(registry_pb2.PromoteRequest(caller=caller, model=name, version=1))

    def query(reference: str) -> inference_pb2.QueryRequest:
        return inference_pb2.QueryRequest(caller=caller, model=inference_pb2.Target(reference=reference),
                                          image=image_of(0), question="is there a star?")

    reply = await inference_stub.Query(query("local"))
    assert (reply.version, reply.alias) == (1, "production") and reply.model_id.startswith("mdl_")
    assert len(stack.inference.service.pool.loaded()) == 1  # the same directory as the default: one model in memory
    for name in ("escape", "sneaky"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await inference_stub.Query(query(name))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "outside the checkpoint directories" in (err.value.details() or "")
