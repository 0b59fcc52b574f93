"""The floor under the gateway's overhead: the platform's fixed hops, with no work in them.

Every request crosses the same fixed path: HTTP into the gateway (uvicorn + Litestar), one
Redis round trip (the rate limit), a gRPC call to the inference process, a hop onto the thread
that runs the model, where the image is decoded once (the bare call is handed a decoded image),
a durable commit of the request's events to the outbox, and back. This
benchmark builds that chain from the platform's own pieces, with the same settings: the gateway's
`HttpServer` and `RateLimiter`, `dreamforge.grpcio.channel`, the services' gRPC server
interceptors, `Database.write` with `Outbox` rows of the real events, uvloop in both server
processes. Nothing else runs in it: no API keys, no image checks, no model, no event relay or
consumers. Its latency is what this architecture costs on this machine before any work; the
bare query of the default model, timed in the same run with the same gaps, sets the 15 % budget
the platform's whole overhead must fit in (`bench/gateway_overhead.py` measures that overhead,
`bench/request_stages.py` where it goes).

    python bench/stack_floor.py [--requests 100] [--gaps-ms 0,150]

Rows: the HTTP round trip alone (an empty handler); the rate limit from this process (one Redis
round trip leases a tenth of the bucket, as in the gateway); the gRPC call alone (inference's
thread hop, image decode and commit, from this process); the thread hop and the commit in one
idle process; the whole chain. The HTTP rows run twice: with
the standard library's client (`benchlib.StdlibClient`, the least a client adds) and with httpx.
`--gaps-ms` waits before every call (not timed), as `--gap-ms` does in the other two benchmarks:
after 150 ms idle every hop wakes a sleeping process, which costs more than back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import platform as host
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from benchlib import StdlibClient, percentile

from dreamforge.db import Database
from dreamforge.events import INFERENCE_COMPLETED, USAGE_RECORDED, new_meta
from dreamforge.images import decode_image, encode_png, to_data_url
from dreamforge.infra import ensure_redis, free_port, wait_for_port
from dreamforge.outbox import Outbox
from dreamforge.runtime import event_loop_factory
from dreamforge.v1 import common_pb2, events_pb2, inference_pb2, inference_pb2_grpc
from dreamforge.world import get_sample

ROOT = Path(__file__).resolve().parents[1]
CHAIN = "the chain: HTTP → Redis → gRPC → back"
CHAIN_HTTPX = "  the chain, httpx client"


# -- the inference side: a gRPC Query that hops to a worker thread and commits two events ---------
def _serve_inference(port: int, db_path: str) -> None:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_inference(port, db_path))


class _InferenceSkeleton(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self, db: Database, outbox: Outbox) -> None:
        self.db, self.outbox = db, outbox

    async def Query(self, request: inference_pb2.QueryRequest, context: Any) -> inference_pb2.SkillResponse:
        await asyncio.to_thread(decode_image, request.image.data)  # where the model would run
        await commit_events(self.db, self.outbox, request.request_id, request.caller.tenant_id)
        return inference_pb2.SkillResponse(request_id=request.request_id, text="yes")


def _no_model() -> None:
    """An empty job for the thread-hop row."""


async def commit_events(db: Database, outbox: Outbox, request_id: str, tenant: str) -> None:
    """The two rows inference commits per answer, built and written as inference does."""
    completed = events_pb2.InferenceCompleted(meta=new_meta(tenant, "inference", f"{request_id}:completed"),
                                              request_id=request_id, skill="query", output_json='{"text": "yes"}')
    usage = events_pb2.UsageRecorded(meta=new_meta(tenant, "inference", f"{request_id}:usage"),
                                     request_id=request_id, skill="query", images=1)
    rows = outbox.rows([(INFERENCE_COMPLETED, completed), (USAGE_RECORDED, usage)])
    await db.write(lambda conn: outbox.insert(conn, rows))


async def open_outbox(db_path: str) -> tuple[Database, Outbox]:
    db = Database(f"sqlite+aiosqlite:///{db_path}", "inference")
    outbox = Outbox(db)
    await db.migrate([outbox.migration(1)])
    return db, outbox


async def _inference(port: int, db_path: str) -> None:
    import grpc

    from dreamforge.grpcio import service_interceptors

    db, outbox = await open_outbox(db_path)
    server = grpc.aio.server(interceptors=service_interceptors())
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(_InferenceSkeleton(db, outbox), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


# -- the gateway side: HTTP in, the rate limit, the image out of its data URL, the gRPC call, the answer
def _serve_gateway(port: int, redis_url: str, inference_port: int) -> None:
    logging.disable(logging.INFO)  # uvicorn's and the HTTP server's start-up lines
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_gateway(port, redis_url, inference_port))


async def _gateway(port: int, redis_url: str, inference_port: int) -> None:
    from litestar import Litestar, post
    from redis.asyncio import Redis

    from dreamforge.grpcio import channel
    from dreamforge.images import bytes_from_data_url_or_base64 as image_bytes
    from services.gateway.http_server import HttpServer
    from services.gateway.keys import Principal
    from services.gateway.ratelimit import RateLimiter

    limiter = RateLimiter(Redis.from_url(redis_url), per_minute=1_000_000, burst=100)
    principal = Principal(tenant_id="bench", key_id="floor", scopes=frozenset({"app"}))
    stub = inference_pb2_grpc.InferenceServiceStub(channel(f"127.0.0.1:{inference_port}"))
    count = 0

    @post("/empty")
    async def empty(data: dict[str, Any]) -> dict[str, Any]:
        return {}

    @post("/query")
    async def query(data: dict[str, Any]) -> dict[str, Any]:
        nonlocal count
        count += 1
        if not (await limiter.hit(principal)).allowed:
            raise RuntimeError("rate limited")
        answer = await stub.Query(inference_pb2.QueryRequest(
            caller=common_pb2.Caller(tenant_id="bench", key_id="floor"), request_id=f"gw-{os.getpid()}-{count}",
            question=data["question"], image=inference_pb2.Image(data=image_bytes(data["image_url"]))))
        return {"answer": answer.text}

    server = HttpServer(Litestar([empty, query]), "127.0.0.1", port)
    await server.start()
    await asyncio.Event().wait()


# -- the client ---------------------------------------------------------------------------------
async def timed(call: Callable[[int], Awaitable[object]], n: int, gap_s: float) -> list[float]:
    await call(-1)  # warm-up
    times = []
    for i in range(n):
        if gap_s:
            await asyncio.sleep(gap_s)
        t0 = time.perf_counter()
        await call(i)
        times.append((time.perf_counter() - t0) * 1000)
    return times


async def measure(n: int, gaps_s: list[float], model_dir: Path) -> None:
    from redis.asyncio import Redis

    from dreamforge.grpcio import channel
    from dreamforge.model.skills import Skills
    from services.gateway.keys import Principal
    from services.gateway.ratelimit import RateLimiter

    skills = Skills.from_pretrained(model_dir)
    samples = [get_sample("test", i) for i in range(n)]
    questions = [s.questions()[i % len(s.questions())].question for i, s in enumerate(samples)]
    pngs = [encode_png(s.image) for s in samples]
    bodies = [{"image_url": to_data_url(s.image), "question": q} for s, q in zip(samples, questions, strict=True)]

    with tempfile.TemporaryDirectory() as tmp:
        redis_service = ensure_redis(f"redis://127.0.0.1:{free_port()}/0", Path(tmp))
        ports = {"inference": free_port(), "gateway": free_port()}
        spawn = multiprocessing.get_context("spawn")
        servers = [spawn.Process(target=_serve_inference, args=(ports["inference"], f"{tmp}/inference.db"),
                                 daemon=True),
                   spawn.Process(target=_serve_gateway, args=(ports["gateway"], redis_service.url,
                                                              ports["inference"]), daemon=True)]
        for server in servers:
            server.start()
        try:
            for port in ports.values():
                wait_for_port("127.0.0.1", port, timeout=30)
            db, outbox = await open_outbox(f"{tmp}/local.db")
            redis = Redis.from_url(redis_service.url)
            limiter = RateLimiter(redis, per_minute=1_000_000, burst=100)
            principal = Principal(tenant_id="bench", key_id="client", scopes=frozenset({"app"}))
            stub = inference_pb2_grpc.InferenceServiceStub(channel(f"127.0.0.1:{ports['inference']}"))
            serial = iter(range(10**9))

            base_url = f"http://127.0.0.1:{ports['gateway']}"
            lean = StdlibClient(base_url)
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                async def http_empty(i: int) -> None:
                    (await client.post("/empty", json=bodies[i])).raise_for_status()

                async def lean_empty(i: int) -> None:
                    (await lean.post("/empty", json=bodies[i], headers={})).raise_for_status()

                async def rate_limit(i: int) -> None:
                    await limiter.hit(principal)

                async def grpc_call(i: int) -> None:
                    await stub.Query(inference_pb2.QueryRequest(
                        caller=common_pb2.Caller(tenant_id="bench", key_id="client"),
                        request_id=f"client-{next(serial)}", question=questions[i],
                        image=inference_pb2.Image(data=pngs[i])))

                async def thread_hop(i: int) -> None:
                    await asyncio.to_thread(_no_model)

                async def commit(i: int) -> None:
                    await commit_events(db, outbox, f"local-{next(serial)}", "bench")

                async def chain(i: int) -> None:
                    (await client.post("/query", json=bodies[i])).raise_for_status()

                async def lean_chain(i: int) -> None:
                    (await lean.post("/query", json=bodies[i], headers={})).raise_for_status()

                async def bare_query(i: int) -> None:
                    skills.query(samples[i].image, questions[i])

                rows: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
                    ("bare query, default model (A)", bare_query),
                    ("HTTP round trip, empty handler", lean_empty),
                    ("  the same, httpx client", http_empty),
                    ("rate limit (leased: Redis 1 call in 10)", rate_limit),
                    ("gRPC call: thread, decode, commit there", grpc_call),
                    ("  worker-thread hop, in one process", thread_hop),
                    ("  outbox commit, in one process", commit),
                    (CHAIN, lean_chain),
                    (CHAIN_HTTPX, chain),
                    ("bare query, default model (B)", bare_query),
                ]
                figures: dict[str, list[list[float]]] = {name: [] for name, _ in rows}
                for gap_s in gaps_s:
                    for name, call in rows:
                        figures[name].append(await timed(call, n, gap_s))
            await lean.aclose()
            await redis.aclose()
            await db.close()
        finally:
            for server in servers:
                server.terminate()
                server.join(5)
            redis_service.stop()

    import torch
    print(f"# Stack floor — {n} calls per row, concurrency 1; {host.machine()}, {os.cpu_count()} cores, "
          f"Python {host.python_version()}, {torch.get_num_threads()} torch threads for the bare query")
    head = "".join(f"{f'gap {g * 1000:.0f} ms':>18}" for g in gaps_s)
    print(f"{'call (p50 / p90 ms)':<44}{head}")
    for name, _ in rows:
        print(f"{name:<44}" + "".join(f"{_p(t):>18}" for t in figures[name]))
    bare = [a + b for a, b in zip(figures["bare query, default model (A)"], figures["bare query, default model (B)"],
                                  strict=True)]
    print(f"{'15 % of the bare query (p50)':<44}" + "".join(f"{0.15 * percentile(t, 0.5):>18.2f}" for t in bare))
    for name, label in ((CHAIN, "the chain, as a share of the bare query"), (CHAIN_HTTPX, "  the same, httpx client")):
        chain_p50 = [percentile(t, 0.5) for t in figures[name]]
        print(f"{label:<44}"
              + "".join(f"{c / percentile(t, 0.5) * 100:>17.0f}%" for c, t in zip(chain_p50, bare, strict=True)))


def _p(times: list[float]) -> str:
    return f"{percentile(times, 0.5):.2f} / {percentile(times, 0.9):.2f}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--gaps-ms", default="0,150", help="comma-separated untimed waits before every call")
    args = parser.parse_args()
    gaps = [float(g) / 1000 for g in args.gaps_ms.split(",") if g.strip()]
    asyncio.run(measure(args.requests, gaps, args.model.resolve()))
