"""The skill path's pure parts: input checks, request building, error mapping, SDK image encoding."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import grpc
import pytest
from PIL import Image

from dreamforge.client import image_url
from dreamforge.grpcio import InvalidArgument
from dreamforge.v1 import common_pb2, inference_pb2
from services.gateway.skills import (
    ChatTurn,
    SkillCall,
    Unavailable,
    body,
    build_request,
    call_from_message,
    check_turns,
    failure_of,
    image_bytes,
    image_bytes_async,
    model_reference,
    stream_request,
)
from services.gateway.sse import frame
from tests.gateway.images import data_url, encoded


async def test_small_images_are_checked_on_the_loop_and_large_ones_in_a_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    threaded: list[str] = []
    to_thread = asyncio.to_thread

    async def recording(func, *args):  # type: ignore[no-untyped-def]
        threaded.append(func.__name__)
        return await to_thread(func, *args)

    # `asyncio` is one module: the suite's other services in this process (an outbox relay's reads) may hop too
    monkeypatch.setattr("services.gateway.skills.asyncio.to_thread", recording)
    small, large = encoded("PNG", (96, 96)), encoded("PNG", (512, 512))
    assert await image_bytes_async(data_url("PNG", (96, 96)), body("image_url")) == small
    assert "check_image_bytes" not in threaded
    assert await image_bytes_async(data_url("PNG", (512, 512)), body("image_url")) == large
    assert threaded.count("check_image_bytes") == 1  # few bytes (one colour), but 262,144 pixels to decode
    huge = base64.b64encode(encoded("PNG", (4001, 4001))).decode()
    with pytest.raises(InvalidArgument, match="`image_url`: image is 4001x4001 = 16008001 pixels"):
        await image_bytes_async(huge, body("image_url"))
    for bad, message in [(None, "`image_url` is required"), ("  ", "`image_url` is required"),
                         ("%%%", "`image_url`: image is not valid base64"),
                         (base64.b64encode(b"hello").decode(), "`image_url`: image could not be decoded"),
                         (base64.b64encode(small[:60]).decode(), "`image_url`: image is truncated or corrupt")]:
        with pytest.raises(InvalidArgument, match=message):
            await image_bytes_async(bad, body("image_url"))


def test_model_reference_defaults() -> None:
    assert [model_reference(v) for v in (None, "", "  ", "default", " shapes@3 ")] == [
        "default", "default", "default", "default", "shapes@3"]


def test_image_bytes_accepts_data_urls_and_base64_and_names_the_field() -> None:
    png = encoded("PNG")
    assert image_bytes("data:image/png;base64," + base64.b64encode(png).decode(), body("image_url")) == png
    assert image_bytes(base64.b64encode(encoded("WEBP")).decode(), body("x")) == encoded("WEBP")
    with pytest.raises(InvalidArgument, match=r"body field `requests\[3\].image_url`: image is not valid base64"):
        image_bytes("@@@", body("requests[3].image_url"))


def test_requests_are_built_per_skill_with_caller_model_and_request_id() -> None:
    caller = common_pb2.Caller(tenant_id="t_1", key_id="k_1", scopes=["app"])
    png = encoded("PNG")
    caption = build_request(SkillCall("caption", "req_1", "shapes@2", image=png, length="long"), caller)
    assert isinstance(caption, inference_pb2.CaptionRequest)
    assert (caption.caller, caption.request_id, caption.model.reference, caption.image.data, caption.length) == (
        caller, "req_1", "shapes@2", png, "long")
    chat = build_request(SkillCall("chat", "req_2", messages=(ChatTurn("user", "hi", (png,)),), max_tokens=5,
                                   temperature=0.5), caller)
    assert chat.messages[0].images[0].data == png and chat.max_tokens == 5 and chat.model.reference == "default"
    assert stream_request(SkillCall("query", "req_3", image=png, question="q"), caller).WhichOneof("skill") == "query"
    with pytest.raises(InvalidArgument, match="detect cannot stream"):
        stream_request(SkillCall("detect", "req_4", image=png, object="o"), caller)


def test_grpc_messages_are_checked_like_rest() -> None:
    call = call_from_message("point", inference_pb2.PointRequest(
        image=inference_pb2.Image(data=encoded("JPEG")), object=" dot ", model=inference_pb2.Target()), "r")
    assert (call.object, call.model) == ("dot", "default")
    with pytest.raises(InvalidArgument, match=r"request field `model\.reference` is 301 characters"):
        call_from_message("caption", inference_pb2.CaptionRequest(model=inference_pb2.Target(reference="m" * 301)),
                          "r")
    with pytest.raises(InvalidArgument, match="only user messages may carry images"):
        check_turns([ChatTurn("assistant", "x", (encoded(),)), ChatTurn("user", "y")], "messages")
    with pytest.raises(InvalidArgument, match="at most 4 images"):
        check_turns([ChatTurn("user", "x", (encoded(),) * 5)], "messages")


def test_failures_map_like_the_error_handlers() -> None:
    rpc = grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata(), details="nope")
    assert failure_of("r1", rpc) == failure_of("r1", rpc)
    assert (failure_of("r1", rpc).status, failure_of("r1", rpc).code) == (404, "not_found")
    assert failure_of("r2", Unavailable("down")).status == 503
    internal = grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x")
    assert (failure_of("r3", internal).status, failure_of("r3", internal).code) == (502, "bad_gateway")


def test_sse_frames() -> None:
    assert frame({"chunk": "a b", "completed": False}) == b'data: {"chunk":"a b","completed":false}\n\n'
    assert frame({"error": {}}, event="error") == b'event: error\ndata: {"error":{}}\n\n'


def test_sdk_image_encoding(tmp_path: Path) -> None:
    png = encoded("PNG")
    assert base64.b64decode(image_url(png)) == png
    path = tmp_path / "i.png"
    path.write_bytes(png)
    assert base64.b64decode(image_url(path)) == png == base64.b64decode(image_url(str(path)))
    assert image_url("data:image/png;base64,AAAA") == "data:image/png;base64,AAAA"
    assert image_url(Image.new("RGB", (4, 4))).startswith("data:image/png;base64,")
    with pytest.raises(FileNotFoundError):
        image_url(str(tmp_path / "missing.png"))
    with pytest.raises(TypeError):
        image_url(42)  # type: ignore[arg-type]
