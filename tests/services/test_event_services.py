"""The inference, feedback, trainer and billing services, each running for real on a
real JetStream server: they consume their events exactly once (a duplicate publish
and a replay past the dedupe window change nothing), answer their gRPC API, and
say UNIMPLEMENTED with a clear message for what this release cannot do yet."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
from google.protobuf.message import Message

from dreamforge.events import (
    INFERENCE_COMPLETED,
    MODEL_UPDATED,
    REWARD_SCORED,
    USAGE_RECORDED,
    EventType,
    new_meta,
)
from dreamforge.grpcio import channel, health_status
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    common_pb2,
    events_pb2,
    feedback_pb2,
    feedback_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from services.billing.main import build as build_billing
from services.feedback.main import build as build_feedback
from services.inference.main import build as build_inference
from services.inference.settings import InferenceSettings
from services.trainer.main import build as build_trainer
from tests.helpers import eventually, platform_settings, running_service


async def publish_twice(nats_url: str, event: EventType, payload: Message) -> None:
    """Publish with the dedupe header, then replay it without (as after the window)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    subject = event.subject(payload.meta.tenant_id)  # type: ignore[attr-defined]
    data = payload.SerializeToString()
    await js.publish(subject, data, headers={"Nats-Msg-Id": payload.meta.event_id})  # type: ignore[attr-defined]
    await js.publish(subject, data, headers={"Nats-Msg-Id": payload.meta.event_id})  # type: ignore[attr-defined]
    await js.publish(subject, data)  # replay: no header, JetStream cannot dedupe it
    await nc.close()


def caller(tenant: str) -> common_pb2.Caller:
    return common_pb2.Caller(tenant_id=tenant, key_id="k1", scopes=["admin"])


async def test_billing_ledger_counts_each_usage_event_once(nats_url: str, tmp_path: Path) -> None:
    settings = platform_settings(tmp_path, nats_url)
    async with running_service("billing", build_billing, settings) as runtime:
        for i in range(3):
            await publish_twice(nats_url, USAGE_RECORDED, events_pb2.UsageRecorded(
                meta=new_meta("t_a", "inference", f"u{i}"), request_id=f"r{i}", skill="caption",
                images=1, input_tokens=10, output_tokens=5))
        await publish_twice(nats_url, USAGE_RECORDED, events_pb2.UsageRecorded(
            meta=new_meta("t_b", "inference", "other"), request_id="rb", images=7))
        target = f"127.0.0.1:{runtime.port}"
        async with channel(target) as ch:
            stub = billing_pb2_grpc.BillingServiceStub(ch)

            async def usage_is(expected: int) -> bool:
                reply = await stub.GetUsage(billing_pb2.GetUsageRequest(caller=caller("t_a")))
                return bool(reply.requests == expected)

            await eventually(lambda: usage_is(3))
            assert await health_status(target) == "SERVING"
            # everything consumed (including the replays) and still exactly three
            await eventually(lambda: _consumer_idle(nats_url, USAGE_RECORDED.stream, "billing-ledger"))
            reply = await stub.GetUsage(billing_pb2.GetUsageRequest(caller=caller("t_a")))
            assert (reply.requests, reply.images, reply.input_tokens, reply.output_tokens) == (3, 3, 30, 15)
            other = await stub.GetUsage(billing_pb2.GetUsageRequest(caller=caller("t_b")))
            assert other.images == 7
            quote = await stub.Quote(billing_pb2.QuoteRequest(caller=caller("t_a"), images_per_month={"caption": 10}))
            assert (quote.plan, quote.total_minor_units) == ("payg", 20)


async def test_feedback_keeps_each_output_once_and_isolates_tenants(nats_url: str, tmp_path: Path) -> None:
    async with running_service("feedback", build_feedback, platform_settings(tmp_path, nats_url)) as runtime:
        completed = events_pb2.InferenceCompleted(
            meta=new_meta("t_a", "inference", "c1"), request_id="req_1", model_id="mdl_1", version=2,
            skill="query", prompt="what colour?", image_ref="ab" * 32, output_json='{"answer": "red"}',
            latency_ms=12.5)
        await publish_twice(nats_url, INFERENCE_COMPLETED, completed)
        async with channel(f"127.0.0.1:{runtime.port}") as ch:
            stub = feedback_pb2_grpc.FeedbackServiceStub(ch)

            async def fetch() -> Any:
                try:
                    return await stub.GetOutput(feedback_pb2.GetOutputRequest(caller=caller("t_a"),
                                                                              request_id="req_1"))
                except grpc.aio.AioRpcError:
                    return None

            output = await eventually(fetch)
            assert (output.prompt, output.output_json, output.version) == ("what colour?", '{"answer": "red"}', 2)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.GetOutput(feedback_pb2.GetOutputRequest(caller=caller("t_b"), request_id="req_1"))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
            await eventually(lambda: _consumer_idle(nats_url, INFERENCE_COMPLETED.stream, "feedback-outputs"))
            rating = await stub.SubmitFeedback(feedback_pb2.SubmitFeedbackRequest(
                caller=caller("t_a"), request_id="req_1", kind="thumbs", value_json='"up"'))
            assert rating.request_id == "req_1"


async def test_trainer_buffers_each_reward_once(nats_url: str, tmp_path: Path) -> None:
    async with running_service("trainer", build_trainer, platform_settings(tmp_path, nats_url)) as runtime:
        for i in range(4):
            await publish_twice(nats_url, REWARD_SCORED, events_pb2.RewardScored(
                meta=new_meta("t_a", "feedback", f"rw{i}"), model_id="mdl_1", reward=0.5))
        await eventually(lambda: _consumer_idle(nats_url, REWARD_SCORED.stream, "trainer-rewards"))
        assert await runtime.state.pending("t_a", "mdl_1") == 4
        async with channel(f"127.0.0.1:{runtime.port}") as ch:
            stub = trainer_pb2_grpc.TrainerServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.CreateJob(trainer_pb2.CreateJobRequest(caller=caller("t_a")))
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "model is required" in (err.value.details() or "")


async def test_inference_follows_alias_moves_once_and_ignores_stale_events(nats_url: str, tmp_path: Path) -> None:
    # no default checkpoint: the routing table works, the skills say why they cannot answer
    settings = InferenceSettings(home=tmp_path, nats_url=nats_url, log_format="text",
                                 default_model=tmp_path / "no-model")
    async with running_service("inference", build_inference, settings) as runtime:
        first = events_pb2.ModelUpdated(meta=new_meta("t_a", "registry", "m1"), model_id="mdl_1",
                                        alias="production", version=1, action="promote")
        second = events_pb2.ModelUpdated(meta=new_meta("t_a", "registry", "m2"), model_id="mdl_1",
                                         alias="production", version=2, previous_version=1, action="promote")
        await publish_twice(nats_url, MODEL_UPDATED, second)
        await publish_twice(nats_url, MODEL_UPDATED, first)  # arrives late: must not move production back
        await eventually(lambda: _consumer_idle(nats_url, MODEL_UPDATED.stream, "inference-routes"))
        assert await runtime.state.routes.version_for("t_a", "mdl_1", "production") == 2
        async with channel(f"127.0.0.1:{runtime.port}") as ch:
            stub = inference_pb2_grpc.InferenceServiceStub(ch)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Caption(inference_pb2.CaptionRequest(caller=caller("t_a")))
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert "caption: no model runtime is configured" in (err.value.details() or "")
            assert "no-model" in (err.value.details() or "")
            loaded = await stub.ListLoaded(inference_pb2.ListLoadedRequest())
            assert list(loaded.adapters) == []


async def test_ledger_survives_a_service_restart(nats_url: str, tmp_path: Path) -> None:
    """Kill-free restart: the second process resumes the durable consumer where the
    first stopped and the ledger keeps what the first wrote."""
    settings = platform_settings(tmp_path, nats_url)
    async with running_service("billing", build_billing, settings):
        await publish_twice(nats_url, USAGE_RECORDED, events_pb2.UsageRecorded(meta=new_meta("t_a", "i", "x1")))
        await eventually(lambda: _consumer_idle(nats_url, USAGE_RECORDED.stream, "billing-ledger"))
    await publish_twice(nats_url, USAGE_RECORDED, events_pb2.UsageRecorded(meta=new_meta("t_a", "i", "x2")))
    async with running_service("billing", build_billing, settings) as runtime:
        await eventually(lambda: _consumer_idle(nats_url, USAGE_RECORDED.stream, "billing-ledger"))
        assert (await runtime.state.reports.report(["t_a"], [], None, None)).totals.requests == 2


async def _consumer_idle(nats_url: str, stream: str, durable: str) -> bool:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().consumer_info(stream, durable)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq > 0)
    except Exception:
        return False
    finally:
        await nc.close()


async def _expect_unimplemented(call: Awaitable[Any] | Callable[[], Awaitable[Any]], words: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert words in (err.value.details() or "")
    assert "not available in this DreamForge release yet" in (err.value.details() or "")


async def test_a_service_on_a_taken_port_fails_at_bind_instead_of_sharing_it(nats_url: str, tmp_path: Path) -> None:
    """gRPC listens with SO_REUSEPORT unless told not to; then a second server on the same port
    starts "fine" and the kernel splits new connections between the two processes."""
    settings = platform_settings(tmp_path, nats_url)
    async with running_service("billing", build_billing, settings) as first:
        second = ServiceRuntime("billing", settings, port=first.port)
        second.state = await build_billing(second)
        taken = f"billing: cannot bind 127.0.0.1:{first.port}: .*DREAMFORGE_BILLING_PORT"
        with pytest.raises(RuntimeError, match=taken):
            await asyncio.wait_for(second.run(handle_signals=False), timeout=10)  # sharing: it would serve
        for _ in range(8):  # every new connection still reaches the first
            assert await health_status(f"127.0.0.1:{first.port}") == "SERVING"
