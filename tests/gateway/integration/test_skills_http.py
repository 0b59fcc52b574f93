"""The skill routes over HTTP against the real registry + inference: input checks (400 naming the
field), scope `app`, request ids, model selection, fan-out, batch and backend error mapping."""

from __future__ import annotations

import asyncio
import base64
import io
from typing import Any

import grpc
import httpx
import nats
import pytest
from PIL import Image

from dreamforge.events import USAGE_RECORDED
from dreamforge.grpcio import channel
from dreamforge.v1 import events_pb2, gateway_pb2_grpc, inference_pb2, inference_pb2_grpc
from services.gateway.skills import MAX_BATCH_CALLS
from tests.gateway.conftest import Stack, gateway_calling
from tests.gateway.images import PNG, data_url, encoded, plain_base64
from tests.helpers import eventually

SKILL_PATHS = ["/v1/caption", "/v1/query", "/v1/detect", "/v1/point", "/v1/compare", "/v1/batch",
               "/v1/chat/completions"]
GIF = "data:image/gif;base64," + base64.b64encode(encoded("GIF")).decode()


def _huge_pixels() -> str:
    buffer = io.BytesIO()
    Image.new("L", (4001, 4001)).save(buffer, format="PNG")  # 16,008,001 pixels, a few KiB
    return base64.b64encode(buffer.getvalue()).decode()


def chat(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "default", "messages": [{"role": "user", "content": content}], **extra}


BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/caption", {}, "`image_url`"),
    ("/v1/caption", {"image_url": ""}, "body field `image_url` is required"),
    ("/v1/caption", {"image_url": "   "}, "body field `image_url` is required"),
    ("/v1/caption", {"image_url": "%%% not base64 %%%"}, "`image_url`: image is not valid base64"),
    ("/v1/caption", {"image_url": "https://example.com/cat.png"}, "`image_url`: image URLs are not fetched"),
    ("/v1/caption", {"image_url": base64.b64encode(b"hello, world").decode()}, "`image_url`: image could not be"),
    ("/v1/caption", {"image_url": "data:image/png;base64,"}, "`image_url`"),
    ("/v1/caption", {"image_url": GIF}, "`image_url`: image format GIF is not supported"),
    ("/v1/caption", {"image_url": _huge_pixels()}, "`image_url`: image is 4001x4001 = 16008001 pixels; the limit"),
    ("/v1/caption", {"image_url": PNG, "length": "epic"}, "`length`"),
    ("/v1/query", {"image_url": PNG}, "`question`"),
    ("/v1/query", {"image_url": PNG, "question": ""}, "`question`"),
    ("/v1/query", {"image_url": PNG, "question": "   "}, "body field `question` is required and must not be blank"),
    ("/v1/query", {"image_url": PNG, "question": "why?" * 600}, "`question`"),
    ("/v1/detect", {"image_url": PNG}, "`object`"),
    ("/v1/detect", {"image_url": PNG, "object": " "}, "body field `object` is required"),
    ("/v1/point", {"image_url": PNG, "object": ""}, "`object`"),
    ("/v1/point", {"image_url": "data:image/png;base64,iVBORw0KGgo=", "object": "x"}, "`image_url`"),
    ("/v1/compare", {"skill": "query", "image_url": PNG, "models": ["default"]}, "body field `question` is required"),
    ("/v1/compare", {"skill": "caption", "image_url": PNG, "models": []}, "`models`"),
    ("/v1/compare", {"skill": "caption", "image_url": PNG, "models": ["a"] * 9}, "`models`"),
    ("/v1/batch", {"requests": []}, "`requests`"),
    ("/v1/batch", {"requests": [{"skill": "caption", "image_url": PNG}] * (MAX_BATCH_CALLS + 1)}, "`requests`"),
    ("/v1/batch", {"requests": [{"skill": "caption", "image_url": PNG}, {"skill": "query", "image_url": PNG}]},
     "body field `requests[1].question` is required"),
    ("/v1/batch", {"requests": [{"skill": "point", "image_url": PNG, "object": "dot"},
                                {"skill": "detect", "image_url": "bm9wZQ==", "object": "x"}]},
     "body field `requests[1].image_url`: image could not be decoded"),
    ("/v1/chat/completions", chat([{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "x"}}]),
     "body field `messages[0].content[1].image_url.url`"),
    ("/v1/chat/completions", {"model": "default", "messages": [{"role": "system", "content": "be nice"}]},
     "`messages`: needs at least one user message"),
    ("/v1/chat/completions", chat("hi", n=2), "`n`"),
    ("/v1/chat/completions", chat([{"type": "input_audio", "input_audio": {}}]), "`messages[0].content[0].type`"),
    ("/v1/chat/completions", chat("hi", max_tokens=0), "`max_tokens`"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, "`model`"),
]


@pytest.mark.parametrize(("path", "body", "names"), BAD_INPUTS)
async def test_bad_input_is_a_400_naming_the_field(stack: Stack, path: str, body: dict[str, Any],
                                                   names: str) -> None:
    account = await stack.account(scopes=("app",))
    async with stack.client(account) as c:
        reply = await c.post(path, json=body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_argument" and names in error["message"], error["message"]
    assert error["request_id"] == reply.headers["x-request-id"]


async def test_an_image_over_the_byte_limit_is_a_400(stack: Stack) -> None:
    account = await stack.account(scopes=("app",))
    too_big = base64.b64encode(b"\xff\xd8\xff" + b"\0" * (10 * 1024 * 1024)).decode()
    async with stack.client(account) as c:
        reply = await c.post("/v1/detect", json={"image_url": too_big, "object": "cat"})
    assert reply.status_code == 400
    message = reply.json()["error"]["message"]
    assert "`image_url`: image is 10485763 bytes; the limit is 10485760 bytes (10 MiB)" in message


@pytest.mark.parametrize("path", SKILL_PATHS)
async def test_skills_need_scope_app(stack: Stack, path: str) -> None:
    ml = await stack.account(scopes=("ml", "rater"))
    async with stack.client(ml) as c:
        reply = await c.post(path, json={})
    assert reply.status_code == 403 and "`app`" in reply.json()["error"]["message"]
    async with stack.client() as c:
        reply = await c.post(path, json={})
    assert reply.status_code == 401


async def test_moondream_header_jpeg_webp_and_plain_base64_are_served_with_request_ids(stack: Stack) -> None:
    account = await stack.account(scopes=("app",))
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as c:
        for image in (data_url("JPEG"), data_url("WEBP"), plain_base64("PNG"), plain_base64("JPEG")):
            reply = await c.post("/v1/caption", json={"image_url": image, "length": "short"},
                                 headers={"X-Moondream-Auth": account.key})
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert isinstance(body["caption"], str) and body["request_id"] == reply.headers["x-request-id"]
            assert body["model"] and body["version"] >= 0 and body["latency_ms"] > 0
        reply = await c.post("/v1/point", json={"image_url": PNG, "object": "red square"},
                             headers={"X-Moondream-Auth": account.key, "X-Request-Id": "my-trace-42"})
    assert reply.status_code == 200 and reply.json()["request_id"] == reply.headers["x-request-id"]
    assert reply.headers["x-request-id"].startswith("req_") and reply.headers["x-client-request-id"] == "my-trace-42"


async def test_every_skill_response_carries_its_request_id(stack: Stack) -> None:
    account = await stack.account(scopes=("app",))
    calls: list[tuple[str, dict[str, Any], str]] = [
        ("/v1/caption", {"image_url": PNG}, "caption"),
        ("/v1/query", {"image_url": PNG, "question": "what colour is the image?"}, "answer"),
        ("/v1/detect", {"image_url": PNG, "object": "square"}, "objects"),
        ("/v1/point", {"image_url": PNG, "object": "square", "model": "default"}, "points"),
        ("/v1/chat/completions", chat([{"type": "text", "text": "what colour is it?"},
                                       {"type": "image_url", "image_url": {"url": PNG}}], max_tokens=8), "choices"),
    ]
    async with stack.client(account) as c:
        for path, body, field in calls:
            reply = await c.post(path, json=body, timeout=60)
            assert reply.status_code == 200, (path, reply.text)
            assert field in reply.json() and reply.json()["request_id"] == reply.headers["x-request-id"]
        for box in (await c.post("/v1/detect", json=calls[2][1], timeout=60)).json()["objects"]:
            assert set(box) == {"x_min", "y_min", "x_max", "y_max"}


async def test_an_unknown_model_is_a_404_and_fan_out_reports_it_per_model(stack: Stack) -> None:
    account = await stack.account(scopes=("app",))
    async with stack.client(account) as c:
        reply = await c.post("/v1/query", json={"image_url": PNG, "question": "what?", "model": "no-such-model"})
        assert reply.status_code == 404 and reply.json()["error"]["code"] == "not_found"
        reply = await c.post("/v1/compare", timeout=60, json={
            "skill": "detect", "image_url": PNG, "object": "square", "models": ["default", "no-such-model", "default"]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    request_id = reply.headers["x-request-id"]
    assert body["request_id"] == request_id and body["skill"] == "detect"
    first, missing, third = body["results"]
    assert [r["request_id"] for r in body["results"]] == [f"{request_id}.{i}" for i in range(3)]
    assert first["status"] == 200 and isinstance(first["objects"], list) and "error" not in first
    assert (first["reference"], third["reference"]) == ("default", "default") and third["status"] == 200
    assert missing["status"] == 404 and missing["reference"] == "no-such-model" and "objects" not in missing
    assert missing["error"]["code"] == "not_found" and missing["error"]["request_id"] == f"{request_id}.1"


async def test_batch_runs_mixed_calls_in_order(stack: Stack) -> None:
    account = await stack.account(scopes=("app",))
    requests = [{"skill": "caption", "image_url": PNG, "length": "short"},
                {"skill": "query", "image_url": data_url("JPEG"), "question": "how many shapes are there?"},
                {"skill": "detect", "image_url": PNG, "object": "square"},
                {"skill": "point", "image_url": PNG, "object": "square", "model": "missing-model"}]
    async with stack.client(account) as c:
        reply = await c.post("/v1/batch", json={"requests": requests}, timeout=60)
    assert reply.status_code == 200, reply.text
    results = reply.json()["results"]
    assert [r["skill"] for r in results] == ["caption", "query", "detect", "point"]
    assert [r["request_id"] for r in results] == [f"{reply.headers['x-request-id']}.{i}" for i in range(4)]
    assert isinstance(results[0]["caption"], str) and isinstance(results[1]["answer"], str)
    assert isinstance(results[2]["objects"], list) and results[3]["status"] == 404


class SlowInference(inference_pb2_grpc.InferenceServiceServicer):
    """An inference service that is up but answers a caption only after `delay_s` (a big model, a slow CPU)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    async def Caption(self, request: Any, context: Any) -> Any:
        await asyncio.sleep(self.delay_s)
        await context.abort(grpc.StatusCode.INTERNAL, "too late to matter")


async def test_a_backend_past_the_deadline_is_a_504_naming_the_setting(stack: Stack) -> None:
    account = await stack.account(scopes=("app",))
    server = grpc.aio.server()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(SlowInference(2.0), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with gateway_calling(stack, f"127.0.0.1:{port}", account.headers, backend_timeout_s=0.3) as c:
            reply = await c.post("/v1/caption", json={"image_url": PNG})
            assert reply.status_code == 504, reply.text
            error = reply.json()["error"]
            assert error["code"] == "deadline_exceeded" and "DREAMFORGE_BACKEND_TIMEOUT_S" in error["message"]
            reply = await c.post("/v1/compare", json={"skill": "caption", "image_url": PNG, "models": ["a"]})
            assert reply.status_code == 200 and reply.json()["results"][0]["status"] == 504
    finally:
        await server.stop(None)


async def test_inference_down_is_a_503_and_bodies_over_the_limit_are_413(stack: Stack) -> None:
    account = await stack.account(scopes=("app",))
    async with gateway_calling(stack, "127.0.0.1:1", account.headers, max_body_bytes=64 * 1024) as c:
        reply = await c.post("/v1/caption", json={"image_url": PNG})
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "unavailable"
        reply = await c.post("/v1/query", json={"image_url": PNG, "question": "hm?", "stream": True})
        assert reply.status_code == 503
        reply = await c.post("/v1/compare", json={"skill": "caption", "image_url": PNG, "models": ["a"]})
        assert reply.status_code == 200 and reply.json()["results"][0]["status"] == 503
        big = data_url("PNG", size=(200, 200), colour="white").ljust(70 * 1024, "=")
        reply = await c.post("/v1/batch", json={"requests": [{"skill": "caption", "image_url": big}]})
        assert reply.status_code == 413 and "65536 bytes" in reply.json()["error"]["message"]


async def test_openapi_documents_the_skill_routes_limits_and_streams(stack: Stack) -> None:
    async with stack.client() as c:
        doc = (await c.get("/docs/openapi.json")).json()
    caption = doc["paths"]["/v1/caption"]["post"]
    assert "10 MiB" in caption["description"] and "16,000,000 pixels" in caption["description"]
    assert set(caption["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert {"400", "401", "403", "404", "413", "429", "503"} <= set(caption["responses"])
    assert "text/event-stream" in doc["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert "text/event-stream" not in doc["paths"]["/v1/detect"]["post"]["responses"]["200"]["content"]
    batch = doc["components"]["schemas"][doc["paths"]["/v1/batch"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert batch["properties"]["requests"]["maxItems"] == MAX_BATCH_CALLS



async def test_a_reused_client_request_id_cannot_hide_a_served_request(stack: Stack) -> None:
    """Two different calls sent with the same `X-Request-Id` (or gRPC `request_id`) are two outputs, each
    recorded and billed once: the gateway names outputs, the caller's id only comes back for correlation."""
    account = await stack.account(scopes=("app",))
    nc = await nats.connect(stack.nats_url)
    usage: list[events_pb2.UsageRecorded] = []

    async def collect(msg: Any) -> None:
        usage.append(events_pb2.UsageRecorded.FromString(msg.data))

    await nc.subscribe(USAGE_RECORDED.subject(account.tenant_id), cb=collect)
    try:
        async with stack.client(account) as c:
            replies = [await c.post(f"/v1/{skill}", json={"image_url": PNG, **fields},
                                    headers={"X-Request-Id": "same-id"})
                       for skill, fields in (("query", {"question": "what colour is it?"}), ("point", {"object": "x"}))]
        async with channel(stack.grpc_target) as ch:
            stub = gateway_pb2_grpc.GatewayServiceStub(ch)  # type: ignore[no-untyped-call]
            grpc_ids = [(await stub.Query(inference_pb2.QueryRequest(
                request_id="same-id", image=inference_pb2.Image(data=encoded("PNG")), question=question),
                metadata=(("authorization", f"Bearer {account.key}"),))).request_id
                for question in ("what colour is it?", "how many shapes are there?")]
        assert [r.status_code for r in replies] == [200, 200]
        assert all(r.headers["x-client-request-id"] == "same-id" for r in replies)
        ids = {r.json()["request_id"] for r in replies} | set(grpc_ids)
        assert len(ids) == 4 and "same-id" not in ids

        async def all_recorded() -> bool:
            return {u.request_id for u in usage} >= ids
        await eventually(all_recorded, timeout_s=15)
        assert sorted(u.request_id for u in usage if u.request_id in ids) == sorted(ids)  # each once
    finally:
        await nc.close()
