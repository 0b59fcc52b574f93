"""The public gRPC front: key in metadata, tenant from the key, errors passed through."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from dreamforge.grpcio import channel
from dreamforge.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, inference_pb2, inference_pb2_grpc
from services.gateway.grpc_front import GatewayServicer
from tests.gateway.conftest import Stack
from tests.gateway.images import encoded


def auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


async def test_whoami_with_and_without_a_key(stack: Stack) -> None:
    account = await stack.account(scopes=("app",))
    async with channel(stack.grpc_target) as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        reply = await stub.WhoAmI(gateway_pb2.WhoAmIRequest(), metadata=auth(account.key))
        assert (reply.tenant_id, reply.key_id, list(reply.scopes)) == (account.tenant_id, account.key_id, ["app"])
        for metadata in [(), auth("df_0000000000000000_" + "x" * 43), (("authorization", "Basic x"),)]:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.WhoAmI(gateway_pb2.WhoAmIRequest(), metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_models_are_the_callers_tenants(stack: Stack) -> None:
    a, b = await stack.account(), await stack.account()
    async with stack.client(b) as c:
        model = (await c.post("/v1/models", json={"name": "grpc-model"})).json()
    async with channel(stack.grpc_target) as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        got = await stub.GetModel(gateway_pb2.PublicGetModelRequest(model="grpc-model"), metadata=auth(b.key))
        assert got.id == model["id"]
        listed = await stub.ListModels(gateway_pb2.PublicListModelsRequest(), metadata=auth(b.key))
        assert [m.id for m in listed.models] == [model["id"]]
        assert list((await stub.ListModels(gateway_pb2.PublicListModelsRequest(), metadata=auth(a.key))).models) == []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetModel(gateway_pb2.PublicGetModelRequest(model=model["id"]), metadata=auth(a.key))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_skill_calls_are_checked_like_rest_before_inference(stack: Stack) -> None:
    account = await stack.account(scopes=("app",))
    rater = await stack.account(scopes=("rater",))
    image = inference_pb2.Image(data=encoded("PNG"))
    async with channel(stack.grpc_target) as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        cases: list[tuple[Any, Any, str]] = [
            (stub.Caption, inference_pb2.CaptionRequest(
                caller=common_pb2.Caller(tenant_id="t_other", scopes=["admin"])), "`image.data` is required"),
            (stub.Caption, inference_pb2.CaptionRequest(image=inference_pb2.Image(data=b"not an image")),
             "`image.data`: image could not be decoded"),
            (stub.Caption, inference_pb2.CaptionRequest(image=image, length="epic"), "`length` must be one of"),
            (stub.Query, inference_pb2.QueryRequest(image=image, question="  "), "`question` is required"),
            (stub.Detect, inference_pb2.DetectRequest(image=image), "`object` is required"),
            (stub.Point, inference_pb2.PointRequest(image=image, object="x" * 201), "the limit is 200"),
            (stub.Chat, inference_pb2.ChatRequest(messages=[inference_pb2.ChatMessage(role="system", text="hi")]),
             "needs a user message"),
            (stub.Chat, inference_pb2.ChatRequest(messages=[inference_pb2.ChatMessage(
                role="user", images=[inference_pb2.Image(data=b"\x89PNG")])]), "`messages[0].images[0].data`"),
        ]
        for method, request, message in cases:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await method(request, metadata=auth(account.key))
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (request, info.value)
            assert message in (info.value.details() or ""), info.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await anext(stub.Stream(inference_pb2.StreamRequest(), metadata=auth(account.key)).__aiter__())
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Point(inference_pb2.PointRequest(), metadata=auth(rater.key))
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "`app`" in (info.value.details() or "")


class RecordingInference(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[inference_pb2.DetectRequest] = []

    async def Detect(self, request: inference_pb2.DetectRequest,
                     context: grpc.aio.ServicerContext) -> inference_pb2.SkillResponse:
        self.requests.append(request)
        return inference_pb2.SkillResponse(request_id=request.request_id, text="ok")


async def test_forwarded_caller_comes_from_the_key_not_the_request(stack: Stack) -> None:
    account = await stack.account(scopes=("app",))
    recorder = RecordingInference()
    inference_server = grpc.aio.server()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(recorder, inference_server)
    inference_port = inference_server.add_insecure_port("127.0.0.1:0")
    front = grpc.aio.server()
    deps = stack.gateway.deps
    async with channel(f"127.0.0.1:{inference_port}") as inference_channel:
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server(GatewayServicer(
            deps.keys, deps.limiter(), deps.registry,
            inference_pb2_grpc.InferenceServiceStub(inference_channel)), front)
        front_port = front.add_insecure_port("127.0.0.1:0")
        await inference_server.start()
        await front.start()
        try:
            async with channel(f"127.0.0.1:{front_port}") as ch:
                stub = gateway_pb2_grpc.GatewayServiceStub(ch)
                forged = inference_pb2.DetectRequest(
                    caller=common_pb2.Caller(tenant_id="t_other", key_id="k", scopes=["admin"]), object="cat",
                    image=inference_pb2.Image(data=encoded("WEBP")))
                reply = await stub.Detect(forged, metadata=auth(account.key))
                call = stub.Detect(forged, metadata=(*auth(account.key), ("x-request-id", "client-id-1")))
                replied = await call
                echoed = dict(await call.initial_metadata())
        finally:
            await front.stop(None)
            await inference_server.stop(None)
    seen = recorder.requests[0]
    assert (seen.caller.tenant_id, seen.caller.key_id, list(seen.caller.scopes)) == (
        account.tenant_id, account.key_id, ["app"])
    assert seen.object == "cat" and seen.request_id.startswith("req_") and reply.request_id == seen.request_id
    assert seen.model.reference == "default" and seen.image.data == encoded("WEBP")
    # the gateway names the output; the caller's own id only comes back for correlation
    assert recorder.requests[1].request_id == replied.request_id == echoed["x-request-id"] != reply.request_id
    assert replied.request_id.startswith("req_") and echoed["x-client-request-id"] == "client-id-1"


async def test_grpc_calls_share_the_keys_rate_limit(stack: Stack) -> None:
    account = await stack.account(rate_limit_per_minute=1)
    async with channel(stack.grpc_target) as ch:
        stub = gateway_pb2_grpc.GatewayServiceStub(ch)
        await stub.WhoAmI(gateway_pb2.WhoAmIRequest(), metadata=auth(account.key))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.WhoAmI(gateway_pb2.WhoAmIRequest(), metadata=auth(account.key))
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(info.value.trailing_metadata() or ())["retry-after"] == "60"


async def test_a_request_that_is_not_its_methods_message_is_invalid_argument_on_every_service(stack: Stack) -> None:
    """grpc itself would answer UNKNOWN ("Unexpected DecodeError"), a server error for the caller's bad bytes."""
    account = await stack.account(scopes=("app",))
    garbage = b"\xff\xff\xff"
    targets = [(stack.grpc_target, "/dreamforge.v1.GatewayService/Query", "dreamforge.v1.QueryRequest", False),
               (stack.grpc_target, "/dreamforge.v1.GatewayService/Stream", "dreamforge.v1.StreamRequest", True),
               (stack.gateway.deps.settings.registry_addr, "/dreamforge.v1.RegistryService/GetModel",
                "dreamforge.v1.GetModelRequest", False)]
    for target, method, message_type, streams in targets:
        async with channel(target) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                if streams:
                    async for _ in ch.unary_stream(method)(garbage, metadata=auth(account.key)):
                        pass
                else:
                    await ch.unary_unary(method)(garbage, metadata=auth(account.key))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, info.value)
        assert f"not a valid {message_type} message" in (info.value.details() or ""), info.value.details()
    async with channel(stack.grpc_target) as ch:  # a valid message still goes through the same interceptor
        reply = await gateway_pb2_grpc.GatewayServiceStub(ch).WhoAmI(gateway_pb2.WhoAmIRequest(),
                                                                     metadata=auth(account.key))
    assert reply.tenant_id == account.tenant_id
