"""The outbox: events queued in the caller's transaction (several in one statement), published in
order, marked sent only once published (a publish that fails leaves it and the rest for the next pass)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from dreamforge.activity import Activity
from dreamforge.db import Database
from dreamforge.events import INFERENCE_COMPLETED, USAGE_RECORDED, new_meta
from dreamforge.outbox import Outbox
from dreamforge.v1 import events_pb2
from tests.helpers import eventually


class Bus:
    """Records publishes; the `fail_at`-th one (1-based) fails. As in `EventBus.publish_raw_many`,
    whose acks come back together, the messages after a failed one still go through."""

    def __init__(self, fail_at: int = 0) -> None:
        self.subjects: list[str] = []
        self.fail_at = fail_at
        self.attempts = 0
        self.passes = 0  # calls of publish_raw_many

    async def publish_raw(self, subject: str, data: bytes, headers: dict[str, str]) -> bool:
        self.attempts += 1
        if self.attempts == self.fail_at:
            raise ConnectionError("NATS away")
        self.subjects.append(f"{subject} {headers['Nats-Msg-Id']}")
        return True

    async def publish_raw_many(self, messages: list[tuple[str, bytes, dict[str, str]]]) -> list[bool | Exception]:
        self.passes += 1
        results: list[bool | Exception] = []
        for message in messages:
            try:
                results.append(await self.publish_raw(*message))
            except ConnectionError as exc:
                results.append(exc)
        return results


def events(request_id: str) -> list[tuple[object, object]]:
    completed = events_pb2.InferenceCompleted(meta=new_meta("t1", "test", f"{request_id}:completed"))
    usage = events_pb2.UsageRecorded(meta=new_meta("t1", "test", f"{request_id}:usage"))
    return [(INFERENCE_COMPLETED, completed), (USAGE_RECORDED, usage)]


async def outbox_in(tmp_path: Path) -> Outbox:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}", "svc")
    outbox = Outbox(db)
    await db.migrate([outbox.migration(1)])
    return outbox


async def unsent(outbox: Outbox) -> list[str]:
    async with outbox.db.engine.connect() as conn:
        return list((await conn.execute(sa.select(outbox.table.c.event_id).where(
            outbox.table.c.published_at.is_(None)).order_by(outbox.table.c.seq))).scalars())


async def test_events_are_queued_together_published_in_order_and_marked_once_sent(tmp_path: Path) -> None:
    outbox = await outbox_in(tmp_path)
    for request_id in ("r1", "r2"):
        async with outbox.db.transaction() as conn:
            await outbox.add_many(conn, events(request_id))  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):  # a retried request id: its events exist already, nothing is added
        async with outbox.db.transaction() as conn:
            await outbox.add_many(conn, events("r1"))  # type: ignore[arg-type]
    assert await unsent(outbox) == ["r1:completed", "r1:usage", "r2:completed", "r2:usage"]

    failing = Bus(fail_at=3)
    with pytest.raises(ConnectionError):
        await outbox.publish_pending(failing)  # type: ignore[arg-type]
    assert [s.split()[1] for s in failing.subjects] == ["r1:completed", "r1:usage", "r2:usage"]
    # Marked up to the failure: r2:usage went through but waits with r2:completed, to keep the order
    # (its second publish is a duplicate JetStream drops).
    assert await unsent(outbox) == ["r2:completed", "r2:usage"]

    bus = Bus()
    assert await outbox.publish_pending(bus) == 2  # type: ignore[arg-type]
    assert bus.subjects == [f"{INFERENCE_COMPLETED.subject('t1')} r2:completed",
                            f"{USAGE_RECORDED.subject('t1')} r2:usage"]
    assert await unsent(outbox) == [] and await outbox.publish_pending(bus) == 0  # type: ignore[arg-type]
    await outbox.db.close()


class SlowBus(Bus):
    """A bus whose first publish waits until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.first_started, self.release = asyncio.Event(), asyncio.Event()

    async def publish_raw(self, subject: str, data: bytes, headers: dict[str, str]) -> bool:
        self.first_started.set()
        await self.release.wait()
        return await super().publish_raw(subject, data, headers)


async def published(bus: Bus, count: int) -> list[str]:
    """The event ids `bus` got once it has `count` of them; the relays below poll every 60 s, so
    within 5 s only their own passes (start, `notify`) can have published them."""
    await eventually(lambda: len(bus.subjects) >= count, timeout_s=5, interval_s=0.01)
    return [s.split()[1] for s in bus.subjects]


async def test_relay_drains_a_backlog_larger_than_one_read_in_one_pass(tmp_path: Path) -> None:
    outbox = await outbox_in(tmp_path)
    for request_id in ("r1", "r2", "r3"):
        async with outbox.db.transaction() as conn:
            await outbox.add_many(conn, events(request_id))  # type: ignore[arg-type]
    bus = Bus()
    outbox.start_relay(bus, poll_s=60, limit=4)  # type: ignore[arg-type]  # 6 rows: two reads
    assert await published(bus, 6) == [f"r{i}:{kind}" for i in (1, 2, 3) for kind in ("completed", "usage")]
    await outbox.stop(bus)  # type: ignore[arg-type]
    await outbox.db.close()


async def test_relay_takes_rows_committed_while_it_publishes_at_once(tmp_path: Path) -> None:
    outbox = await outbox_in(tmp_path)
    async with outbox.db.transaction() as conn:
        await outbox.add_many(conn, events("r1"))  # type: ignore[arg-type]
    bus = SlowBus()
    outbox.start_relay(bus, poll_s=60)  # type: ignore[arg-type]
    await asyncio.wait_for(bus.first_started.wait(), 5)
    async with outbox.db.transaction() as conn:  # after the pass read its rows, before it is done
        await outbox.add_many(conn, events("r2"))  # type: ignore[arg-type]
    outbox.notify()
    bus.release.set()
    assert await published(bus, 4) == ["r1:completed", "r1:usage", "r2:completed", "r2:usage"]
    assert await unsent(outbox) == []
    await outbox.stop(bus)  # type: ignore[arg-type]
    await outbox.db.close()


async def test_a_relay_settling_on_activity_publishes_in_the_first_quiet_moment_or_a_windows_answers_at_once(
        tmp_path: Path) -> None:
    outbox = await outbox_in(tmp_path)
    bus = Bus()
    activity = Activity()
    outbox.start_relay(bus, poll_s=60, settle=lambda: activity.quiet(0.2, at_most_s=1.5))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)  # the start-up pass found nothing
    with activity.busy():  # an answer commits its events and notifies while it is still in flight
        async with outbox.db.transaction() as conn:
            await outbox.add_many(conn, events("r1"))  # type: ignore[arg-type]
        outbox.notify()
        await asyncio.sleep(0.3)
        assert bus.subjects == []  # a request is in flight: not yet
    idle_at = asyncio.get_running_loop().time()
    await asyncio.sleep(0.1)
    assert bus.subjects == []  # idle for 0.1 s of the 0.2 s it waits for
    assert await published(bus, 2) == ["r1:completed", "r1:usage"]
    assert asyncio.get_running_loop().time() - idle_at < 1.0  # the quiet moment, well before the linger

    async def steady_load() -> None:  # requests back to back, never 0.2 s apart
        while True:
            with activity.busy():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.01)

    load = asyncio.create_task(steady_load())
    started = asyncio.get_running_loop().time()
    for request_id in ("r2", "r3"):  # two answers 0.3 s apart
        async with outbox.db.transaction() as conn:
            await outbox.add_many(conn, events(request_id))  # type: ignore[arg-type]
        outbox.notify()
        await asyncio.sleep(0.3)
    assert await published(bus, 6) == ["r1:completed", "r1:usage", "r2:completed", "r2:usage", "r3:completed",
                                       "r3:usage"]
    assert 1.4 <= asyncio.get_running_loop().time() - started < 3  # the bound `at_most_s`, never quiet
    assert bus.passes == 2  # r1 alone, then r2 and r3 together
    load.cancel()
    await outbox.stop(bus)  # type: ignore[arg-type]
    await outbox.db.close()


async def test_synchronous_writes_commit_all_rows_or_none_and_the_relay_sends_them_on_both_databases(
        database_url: str) -> None:
    db = Database(database_url, "svc")
    outbox = Outbox(db)
    await db.migrate([outbox.migration(1)])
    threads: list[int] = []

    def insert(rows: list[dict[str, object]]) -> Callable[[sa.Connection], None]:
        def work(conn: sa.Connection) -> None:
            threads.append(threading.get_ident())
            outbox.insert(conn, rows)
        return work

    await db.write(insert(outbox.rows(events("r1"))))  # type: ignore[arg-type]
    retried = outbox.rows(events("r2")) + outbox.rows(events("r1"))  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):  # r1's ids exist: the whole transaction goes, r2's rows too
        await db.write(insert(retried))
    assert await unsent(outbox) == ["r1:completed", "r1:usage"]
    if db.dialect == "sqlite":  # one hop to a worker thread with the synchronous driver
        assert threading.get_ident() not in threads
    bus = Bus()  # the relay reads and marks through `Database.read` / `write` too
    assert await outbox.publish_pending(bus) == 2  # type: ignore[arg-type]
    assert [s.split()[1] for s in bus.subjects] == ["r1:completed", "r1:usage"]
    assert await unsent(outbox) == [] and await outbox.publish_pending(bus) == 0  # type: ignore[arg-type]
    await db.close()
