"""Ratings accepted per second, end to end: HTTP `POST /v1/feedback` → stored (with its events, one
transaction) → `reward.scored` on NATS.

Starts the whole platform (`dreamforge up` machinery) with rate limits lifted, puts `--outputs`
served outputs into feedback the way inference does (an `inference.completed` event each, so the
figure is feedback's, not the model's), then `--raters` rater keys post one rating per (rater,
output) with `--concurrency` requests in flight. A core NATS subscription records when each
rating's `reward.scored` arrives. Prints HTTP acceptance rate, the end-to-end rate (ratings whose
reward event arrived ÷ time from the first POST to the last event) and the per-rating latency
from POST to event (p50/p99).

    python bench/feedback_rate.py [--outputs 250] [--raters 4] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform as host
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import nats
from benchlib import percentile, platform_on_free_ports

from dreamforge.events import INFERENCE_COMPLETED, REWARD_SCORED, new_meta
from dreamforge.supervisor import Platform
from dreamforge.v1 import events_pb2


async def seed(nats_url: str, tenant: str, n: int) -> list[str]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    ids = []
    for i in range(n):
        rid = f"req_bench_{i:05d}"
        event = events_pb2.InferenceCompleted(
            meta=new_meta(tenant, "inference", f"{rid}:completed"), request_id=rid, model_id="mdl_bench",
            version=1 + i % 2, alias="production", skill="query", prompt="how many shapes are there?",
            image_ref=f"{i:064x}", output_json='{"text": "3"}', latency_ms=25.0, key_id="bench")
        await js.publish(INFERENCE_COMPLETED.subject(tenant), event.SerializeToString(),
                         headers={"Nats-Msg-Id": event.meta.event_id})
        ids.append(rid)
    await nc.close()
    return ids


async def main(n_outputs: int, n_raters: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DREAMFORGE_RATE_LIMIT_PER_MINUTE"] = "1000000"
        os.environ["DREAMFORGE_RATE_LIMIT_BURST"] = "100000"
        settings = platform_on_free_ports(Path(tmp))
        platform = Platform(settings, say=lambda _line: None)
        await platform.start()
        try:
            await run(platform, settings.nats_url, n_outputs, n_raters, concurrency)
        finally:
            await asyncio.to_thread(platform.stop)


async def run(platform: Platform, nats_url: str, n_outputs: int, n_raters: int, concurrency: int) -> None:
    admin = {"Authorization": f"Bearer {platform.admin_key()}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=platform.url, timeout=60, limits=limits) as client:
        tenant = (await client.post("/v1/admin/tenants", json={"name": "bench"}, headers=admin)).json()["id"]
        keys = [(await client.post("/v1/admin/keys", json={"tenant_id": tenant, "scopes": ["rater"]},
                                   headers=admin)).json()["key"] for _ in range(n_raters)]
        ml = {"Authorization": "Bearer " + (await client.post(
            "/v1/admin/keys", json={"tenant_id": tenant, "scopes": ["ml"]}, headers=admin)).json()["key"]}
        r = await client.post("/v1/reward-functions", headers=ml, json={"name": "bench", "active": True, "definition": {
            "terms": [{"metric": "human_rating", "weight": 1.0},
                      {"metric": "latency_ms", "weight": 0.1, "direction": "minimize"}]}})
        r.raise_for_status()
        ids = await seed(nats_url, tenant, n_outputs)
        deadline = time.monotonic() + 60
        while (await client.get(f"/v1/feedback/outputs/{ids[-1]}", headers=ml)).status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit("the seeded outputs never reached the feedback service")
            await asyncio.sleep(0.1)

        arrived: dict[str, float] = {}
        nc = await nats.connect(nats_url)

        async def on_event(msg: nats.aio.msg.Msg) -> None:
            arrived.setdefault(events_pb2.RewardScored.FromString(msg.data).feedback_id, time.perf_counter())

        await nc.subscribe(REWARD_SCORED.subject(tenant), cb=on_event)
        jobs = [(key, rid, 1 + (i + j) % 5) for j, key in enumerate(keys) for i, rid in enumerate(ids)]
        sent: dict[str, float] = {}
        queue: asyncio.Queue[tuple[str, str, int]] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        failures = 0

        async def worker() -> None:
            nonlocal failures
            while not queue.empty():
                key, rid, score = queue.get_nowait()
                t0 = time.perf_counter()
                r = await client.post("/v1/feedback", json={"request_id": rid, "kind": "score", "value": score},
                                      headers={"Authorization": f"Bearer {key}"})
                if r.status_code == 201:
                    sent[r.json()["id"]] = t0
                else:
                    failures += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        accepted_s = time.perf_counter() - start
        deadline = time.monotonic() + 120
        while len(set(sent) & set(arrived)) < len(sent) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await nc.close()

    done = [fid for fid in sent if fid in arrived]
    last = max(arrived[fid] for fid in done)
    latencies = [(arrived[fid] - sent[fid]) * 1000 for fid in done]
    print(f"# Feedback rate — {len(jobs)} score ratings ({n_raters} raters x {n_outputs} outputs), concurrency "
          f"{concurrency}, {host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}")
    print(f"accepted over HTTP (201): {len(sent)} in {accepted_s:.2f} s = {len(sent) / accepted_s:.0f} ratings/s "
          f"({failures} not accepted)")
    print(f"end to end (HTTP -> stored -> reward.scored on NATS): {len(done)} in {last - start:.2f} s = "
          f"{len(done) / (last - start):.0f} ratings/s")
    print(f"POST -> reward event latency: p50 {statistics.median(latencies):.0f} ms, "
          f"p99 {percentile(latencies, 0.99):.0f} ms; missing events: {len(sent) - len(done)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outputs", type=int, default=250)
    parser.add_argument("--raters", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    asyncio.run(main(args.outputs, args.raters, args.concurrency))
