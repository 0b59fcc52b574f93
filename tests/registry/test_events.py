"""`model.updated` from the registry's outbox to a real JetStream server, read back by a
plain nats-py subscriber: order, Nats-Msg-Id = event id, trace context; events committed
while NATS is down are published exactly once when it returns; a restarted registry
(new Database and store on the same SQLite file) loses neither data nor events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
import sqlalchemy as sa
from nats.aio.msg import Msg

from dreamforge.bus import EventBus
from dreamforge.db import Database
from dreamforge.events import MODEL_UPDATED
from dreamforge.infra import ensure_nats, free_port
from dreamforge.tracing import configure_tracing
from dreamforge.v1 import events_pb2
from services.registry.artifacts import LocalArtifactStore
from services.registry.records import Caller
from services.registry.store import RegistryStore
from tests.helpers import eventually

A = Caller("tenant-a", "key-a")


@pytest.fixture(autouse=True)
def tracing() -> None:
    configure_tracing("registry-test")  # a real tracer provider, as service_main installs


def make_store(tmp_path: Path) -> RegistryStore:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}", "registry")
    return RegistryStore(db, LocalArtifactStore(tmp_path / "artifacts"))


class Subscriber:
    """A plain JetStream subscriber on one tenant's model.updated subject."""

    def __init__(self) -> None:
        self.messages: list[Msg] = []
        self.nc: nats.NATS | None = None

    async def start(self, url: str, tenant: str = "tenant-a") -> Subscriber:
        self.nc = nc = await nats.connect(url)
        self.sub = await nc.jetstream().subscribe(MODEL_UPDATED.subject(tenant), cb=self._on,
                                                       ordered_consumer=True)
        return self

    async def _on(self, msg: Msg) -> None:
        self.messages.append(msg)

    @property
    def events(self) -> list[events_pb2.ModelUpdated]:
        return [events_pb2.ModelUpdated.FromString(m.data) for m in self.messages]

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    sub = Subscriber()
    yield sub
    await sub.close()


async def unpublished(store: RegistryStore) -> int:
    t = store.outbox.table
    async with store.db.engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).where(t.c.published_at.is_(None)))).scalar_one())


async def test_promote_promote_rollback_publishes_three_events_in_order(
    nats_url: str, tmp_path: Path, subscriber: Subscriber
) -> None:
    store = make_store(tmp_path)
    await store.migrate()
    bus = EventBus(nats_url, "registry")
    await bus.connect()
    await subscriber.start(nats_url)
    store.outbox.start_relay(bus, poll_s=0.2)
    model = await store.create_model(A, "cap")
    v1 = await store.create_version(A, "cap", artifact=b"one")
    await store.create_version(A, "cap", artifact=b"two")
    await store.promote(A, "cap", 1)
    await store.promote(A, "cap", 2)
    await store.promote(A, "cap", 2)  # no-op: no event
    await store.rollback(A, "cap")

    await eventually(lambda: len(subscriber.messages) >= 3)
    await asyncio.sleep(0.3)  # nothing else arrives
    got = subscriber.events
    assert [(e.action, e.version, e.previous_version) for e in got] == [
        ("promote", 1, 0), ("promote", 2, 1), ("rollback", 1, 2)]
    assert all(e.model_id == model.id and e.model_name == "cap" and e.alias == "production"
               and not e.is_preview and e.actor == "key-a" and e.meta.producer == "registry" for e in got)
    assert got[2].artifact_sha256 == v1.artifact_sha256
    for msg, event in zip(subscriber.messages, got, strict=True):
        assert msg.subject == "dreamforge.v1.model.updated.tenant-a"
        assert msg.headers is not None
        assert msg.headers["Nats-Msg-Id"] == event.meta.event_id
        assert msg.headers["traceparent"].startswith("00-")
        assert msg.headers["Dreamforge-Event"] == "model.updated"
    assert await unpublished(store) == 0
    await store.outbox.stop(bus)
    await bus.close()
    await store.db.close()


async def test_events_committed_while_nats_is_down_are_published_exactly_once(
    tmp_path: Path, subscriber: Subscriber
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    server = ensure_nats(url, tmp_path / "nats")
    store = make_store(tmp_path)
    await store.migrate()
    bus = EventBus(url, "registry")
    await bus.connect(timeout_s=1.0)
    store.outbox.start_relay(bus, poll_s=0.1)
    await store.create_model(A, "cap")
    for _ in range(3):
        await store.create_version(A, "cap")
    await store.promote(A, "cap", 1)
    await eventually(lambda: _eq(unpublished(store), 0))

    server.stop()  # NATS goes away; the registry keeps committing alias changes
    await store.promote(A, "cap", 2)
    await store.promote(A, "cap", 3)
    await store.create_preview(A, "cap", 1, "try")
    await asyncio.sleep(1.5)  # the relay tries, fails, retries
    assert await unpublished(store) == 3

    server = ensure_nats(url, tmp_path / "nats")  # back, same port and JetStream store
    try:
        await eventually(lambda: _eq(unpublished(store), 0), timeout_s=15)
        await subscriber.start(url)
        await eventually(lambda: len(subscriber.messages) >= 4)
        # a crash between publish and mark-sent makes the relay publish rows again:
        # JetStream drops them by Nats-Msg-Id
        async with store.db.transaction() as conn:
            await conn.execute(store.outbox.table.update().values(published_at=None))
        assert await store.outbox.publish_pending(bus) == 4
        await asyncio.sleep(0.3)
        got = subscriber.events
        assert [(e.alias, e.action, e.version) for e in got] == [
            ("production", "promote", 1), ("production", "promote", 2), ("production", "promote", 3),
            ("try", "preview", 1)]
        assert len({e.meta.event_id for e in got}) == 4
        assert (await bus.js.stream_info(MODEL_UPDATED.stream)).state.messages == 4
    finally:
        await store.outbox.stop(bus)
        await bus.close()
        await store.db.close()
        server.stop()


async def test_restart_on_the_same_database_loses_nothing(
    nats_url: str, tmp_path: Path, subscriber: Subscriber
) -> None:
    # First life: NATS is not reachable at all (no relay ever runs), then the process exits.
    first = make_store(tmp_path)
    assert await first.migrate() == [1, 2]
    model = await first.create_model(A, "cap", tags=["default"])
    for i in range(3):
        await first.create_version(A, "cap", artifact=f"w{i}".encode(), eval_metrics={"iou": i / 10},
                                   idempotency_key=f"job-{i}")
    for version in (1, 2, 3):
        await first.promote(A, "cap", version)
    await first.create_preview(A, "cap", 2, "try")
    before = (await first.list_versions(A, "cap")).items, await first.list_aliases(A, "cap")
    model = await first.get_model(A, model.id)
    await first.db.close()

    # Second life: a new Database and store on the same file.
    second = make_store(tmp_path)
    assert await second.migrate() == []
    assert await second.get_model(A, model.id) == model
    assert ((await second.list_versions(A, "cap")).items, await second.list_aliases(A, "cap")) == before
    retried = await second.create_version(A, "cap", artifact=b"w1", eval_metrics={"iou": 0.1},
                                          idempotency_key="job-1")
    assert retried.version == 2  # the idempotency key survived the restart
    assert (await second.rollback(A, "cap")).version == 2  # the rollback stack survived too
    _, chunks = await second.open_artifact(A, "cap", 3)
    assert b"".join([c async for c in chunks]) == b"w2"
    assert (await second.resolve(A, "default")).version.version == 2

    bus = EventBus(nats_url, "registry")
    await bus.connect()
    await subscriber.start(nats_url)
    second.outbox.start_relay(bus, poll_s=0.2)
    await eventually(lambda: len(subscriber.messages) >= 5)
    await asyncio.sleep(0.3)
    assert [(e.action, e.version) for e in subscriber.events] == [
        ("promote", 1), ("promote", 2), ("promote", 3), ("preview", 2), ("rollback", 2)]
    await second.outbox.stop(bus)
    await bus.close()
    await second.db.close()


async def _eq(value: object, expected: int) -> bool:
    return bool(await value == expected)  # type: ignore[misc]
