"""Event bus throughput: DreamForge's EventBus next to bare nats-py, same server, same run.

What it measures (N events each, on a JetStream server this script starts):
  publish   awaited one at a time: bare `js.publish` vs `EventBus.publish`
            (protobuf payload, Nats-Msg-Id, trace context, producer span)
  pipelined in calls of 500 (what the outbox relay reads at a time), acks awaited together:
            bare `js.publish_async` vs `EventBus.publish_raw_many`
  consume   bare pull `fetch` + ack vs an EventBus durable consumer whose handler
            commits each event exactly once through the SQLite inbox (the pattern
            every service uses), i.e. the real cost of "nothing lost, nothing doubled".

    python bench/bus_throughput.py [--events 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import time
from pathlib import Path

import nats
import sqlalchemy as sa

from dreamforge.bus import Delivery, EventBus
from dreamforge.db import Database
from dreamforge.events import USAGE_RECORDED, new_meta
from dreamforge.infra import ensure_nats, free_port
from dreamforge.outbox import RELAY_BATCH
from dreamforge.v1 import events_pb2


def payload(i: int, tenant: str) -> events_pb2.UsageRecorded:
    return events_pb2.UsageRecorded(meta=new_meta(tenant, "bench", f"{tenant}-{i}"), request_id=f"r{i}",
                                    skill="caption", images=1, input_tokens=64, output_tokens=16)


async def bare_publish(url: str, n: int, pipelined: bool = False) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    subject = USAGE_RECORDED.subject("bare-pipelined" if pipelined else "bare")
    data = [(p.SerializeToString(), {"Nats-Msg-Id": p.meta.event_id})
            for p in (payload(i, "bare-pipelined" if pipelined else "bare") for i in range(n))]
    start = time.perf_counter()
    for first in range(0, n, RELAY_BATCH if pipelined else 1):
        if pipelined:
            await asyncio.gather(*[await js.publish_async(subject, body, headers=headers)
                                   for body, headers in data[first:first + RELAY_BATCH]])
        else:
            await js.publish(subject, data[first][0], headers=data[first][1])
    elapsed = time.perf_counter() - start
    await nc.close()
    return n / elapsed


async def bus_publish(url: str, n: int, pipelined: bool = False) -> float:
    bus = EventBus(url, "bench")
    await bus.connect()
    tenant = "bus-pipelined" if pipelined else "bus"
    data = [payload(i, tenant) for i in range(n)]
    raw = [(USAGE_RECORDED.subject(tenant), p.SerializeToString(), {"Nats-Msg-Id": p.meta.event_id}) for p in data]
    start = time.perf_counter()
    for first in range(0, n, RELAY_BATCH if pipelined else 1):
        if pipelined:
            results = await bus.publish_raw_many(raw[first:first + RELAY_BATCH])
            assert all(r is True for r in results), results
        else:
            await bus.publish(USAGE_RECORDED, data[first])
    elapsed = time.perf_counter() - start
    await bus.close()
    return n / elapsed


async def bare_consume(url: str, n: int) -> float:
    nc = await nats.connect(url)
    sub = await nc.jetstream().pull_subscribe(USAGE_RECORDED.subject("bare"), durable="bench-bare")
    got = 0
    start = time.perf_counter()
    while got < n:
        for msg in await sub.fetch(500, timeout=5):
            await msg.ack()
            got += 1
    elapsed = time.perf_counter() - start
    await nc.close()
    return n / elapsed


async def bus_consume(url: str, n: int, workdir: Path) -> float:
    db = Database(f"sqlite+aiosqlite:///{workdir / 'bench.db'}", "bench")
    await db.migrate([])
    ledger = sa.Table("ledger", db.metadata, sa.Column("event_id", sa.String, primary_key=True),
                      sa.Column("images", sa.Integer))
    async with db.transaction() as conn:
        await conn.run_sync(lambda c: ledger.create(c))
    done = asyncio.Event()
    count = 0

    async def handler(event: events_pb2.UsageRecorded, delivery: Delivery) -> None:
        nonlocal count
        if delivery.subject.endswith(".bus"):
            async def effect(conn: sa.ext.asyncio.AsyncConnection) -> None:
                await conn.execute(ledger.insert().values(event_id=delivery.event_id, images=event.images))
            await db.handle_once(delivery.event_id, delivery.subject, effect)
            count += 1
            if count == n:
                done.set()

    bus = EventBus(url, "bench")
    await bus.connect()
    bus.subscribe(USAGE_RECORDED, handler, durable="bench-bus", batch=500)
    start = time.perf_counter()
    await bus.start()
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - start
    await bus.close()
    await db.close()
    return n / elapsed


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ensure_nats(f"nats://127.0.0.1:{free_port()}", Path(tmp))
        try:
            setup = EventBus(server.url, "bench")
            await setup.connect()  # creates the streams, so the bare client has somewhere to publish
            await setup.close()
            rows = [
                ("publish (awaited, one at a time)", await bare_publish(server.url, n),
                 await bus_publish(server.url, n)),
                (f"publish (pipelined, {RELAY_BATCH} per call)", await bare_publish(server.url, n, pipelined=True),
                 await bus_publish(server.url, n, pipelined=True)),
                ("consume (ack; bus: + exactly-once SQLite commit)", await bare_consume(server.url, n),
                 await bus_consume(server.url, n, Path(tmp))),
            ]
        finally:
            server.stop()
    print(f"# Event bus throughput — {n} events, {platform.machine()}, {platform.python_version()}, "
          f"{__import__('os').cpu_count()} cores")
    print(f"{'operation':<52}{'bare nats-py':>16}{'EventBus':>16}{'ratio':>8}")
    for name, bare, ours in rows:
        print(f"{name:<52}{bare:>12,.0f} ev/s{ours:>12,.0f} ev/s{ours / bare:>8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5000)
    asyncio.run(main(parser.parse_args().events))
