"""A real feedback service (own NATS, SQLite or PostgreSQL) with helpers to serve outputs into it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest

from dreamforge.events import INFERENCE_COMPLETED, new_meta
from dreamforge.grpcio import channel
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import common_pb2, events_pb2, feedback_pb2_grpc
from services.feedback.main import build
from services.feedback.settings import FeedbackSettings
from tests.helpers import eventually, running_service


def caller(tenant: str, key: str = "rater1") -> common_pb2.Caller:
    return common_pb2.Caller(tenant_id=tenant, key_id=key, scopes=["rater"])


async def serve(nats_url: str, tenant: str, request_id: str, *, skill: str = "query", prompt: str = "what colour?",
                output: str = "red", version: int = 1, model_id: str = "mdl_1", image_ref: str = "ab" * 32,
                latency_ms: float = 20.0, at: datetime | None = None) -> None:
    """What inference publishes for a served request."""
    meta = new_meta(tenant, "inference", f"{request_id}:completed")
    if at is not None:
        meta.occurred_at.FromDatetime(at)
    event = events_pb2.InferenceCompleted(
        meta=meta, request_id=request_id, model_id=model_id, version=version, alias="production", skill=skill,
        prompt=prompt, image_ref=image_ref, output_json=json.dumps({"text": output}), latency_ms=latency_ms,
        key_id="app1")
    nc = await nats.connect(nats_url)
    await nc.jetstream().publish(INFERENCE_COMPLETED.subject(tenant), event.SerializeToString(),
                                 headers={"Nats-Msg-Id": meta.event_id})
    await nc.close()


@dataclass
class FeedbackHarness:
    runtime: ServiceRuntime
    stub: feedback_pb2_grpc.FeedbackServiceStub
    nats_url: str

    @property
    def state(self) -> Any:
        return self.runtime.state

    async def serve(self, tenant: str, request_id: str, **kw: Any) -> None:
        await serve(self.nats_url, tenant, request_id, **kw)
        await eventually(lambda: self.state.outputs.get(tenant, request_id))


@pytest.fixture
async def feedback(nats_url: str, tmp_path: Path, database_url: str) -> AsyncIterator[FeedbackHarness]:
    """Once on SQLite, once on PostgreSQL (`database_url` is parametrised)."""
    settings = FeedbackSettings(home=tmp_path, nats_url=nats_url, log_format="text", queue_overlap=2,
                                database_url=database_url)
    async with running_service("feedback", build, settings) as runtime:
        async with channel(f"127.0.0.1:{runtime.port}") as ch:
            yield FeedbackHarness(runtime, feedback_pb2_grpc.FeedbackServiceStub(ch), nats_url)


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc
    raise AssertionError("the call succeeded")


async def stream_events(nats_url: str, subject: str, payload: type[Any] = events_pb2.RewardScored) -> list[Any]:
    """Every message JetStream holds on `subject` (e.g. `dreamforge.v1.reward.scored.*`), decoded."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sub = await js.subscribe(subject, ordered_consumer=True)
        out: list[Any] = []
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            out.append(payload.FromString(msg.data))
        await sub.unsubscribe()
        return out
    finally:
        await nc.close()
