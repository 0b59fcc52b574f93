"""Billing test helpers: the fake Stripe server, a publisher of usage events, a gRPC caller."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import nats
import pytest

from dreamforge.events import USAGE_RECORDED, new_meta
from dreamforge.v1 import common_pb2, events_pb2
from tests.billing.fake_stripe import FakeStripe


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


def caller(tenant: str, *scopes: str) -> common_pb2.Caller:
    return common_pb2.Caller(tenant_id=tenant, key_id=f"k_{tenant}", scopes=list(scopes or ("finance",)))


def usage(tenant: str, event_id: str, skill: str, *, images: int = 1, latency_ms: float = 10.0,
          when: datetime | None = None, model: str = "mdl_1", version: int = 1, alias: str = "production",
          preview: bool = False) -> events_pb2.UsageRecorded:
    meta = new_meta(tenant, "inference", event_id)
    if when is not None:
        meta.occurred_at.FromDatetime(when)
    return events_pb2.UsageRecorded(meta=meta, request_id=event_id.split(":")[0], key_id=f"k_{tenant}",
                                    model_id=model, version=version, alias=alias, is_preview=preview, skill=skill,
                                    images=images, input_tokens=7, output_tokens=3, latency_ms=latency_ms)


class Publisher:
    """JetStream publishes as inference's outbox relay makes them, plus raw replays (no dedupe header)."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self) -> Publisher:
        self.nc = await nats.connect(self.url)
        self.js = self.nc.jetstream()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.nc.close()

    async def publish(self, event: events_pb2.UsageRecorded, *, replay: bool = False) -> None:
        headers = None if replay else {"Nats-Msg-Id": event.meta.event_id}
        await self.js.publish(USAGE_RECORDED.subject(event.meta.tenant_id), event.SerializeToString(),
                              headers=headers)
