"""`python -m services.inference` with DREAMFORGE_METRICS_PORT serves Prometheus metrics: the requests in
flight (what deploy/k8s/inference.yaml scales on), the time to answer by skill, and the events its
durable consumer handled by outcome."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import httpx
import nats

from dreamforge.events import MODEL_UPDATED, new_meta
from dreamforge.grpcio import channel, health_status
from dreamforge.infra import free_ports
from dreamforge.v1 import common_pb2, events_pb2, inference_pb2, inference_pb2_grpc
from services.inference.service import IN_FLIGHT_METRIC
from services.registry.main import build as build_registry
from tests.helpers import eventually, platform_settings, prometheus_value, running_service
from tests.inference.conftest import image_of

ROOT = Path(__file__).resolve().parents[2]


@contextlib.asynccontextmanager
async def gated_proxy(upstream_port: int, gate: asyncio.Event) -> AsyncIterator[int]:
    """A TCP proxy to 127.0.0.1:`upstream_port` that holds back what clients send while `gate` is clear."""
    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gated: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                if gated:
                    await gate.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pump(client_reader, upstream_writer, True), pump(upstream_reader, client_writer, False))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def log_file(path: Path) -> BinaryIO:
    return path.open("wb")


async def test_metrics_count_requests_in_flight_and_time_served_ones(
        nats_url: str, tiny_model_dir: Path, tmp_path: Path) -> None:
    gate = asyncio.Event()
    gate.set()
    inference_port, metrics_port = free_ports(2)
    async with running_service("registry", build_registry, platform_settings(tmp_path / "registry", nats_url)) \
            as registry, gated_proxy(registry.port, gate) as proxy_port:
        env = {**os.environ, "DREAMFORGE_HOME": str(tmp_path / "inference"), "DREAMFORGE_NATS_URL": nats_url,
               "DREAMFORGE_REGISTRY_ADDR": f"127.0.0.1:{proxy_port}", "DREAMFORGE_INFERENCE_PORT": str(inference_port),
               "DREAMFORGE_METRICS_PORT": str(metrics_port), "DREAMFORGE_DEFAULT_MODEL": str(tiny_model_dir),
               "DREAMFORGE_LOG_FORMAT": "json"}
        with log_file(tmp_path / "inference.log") as log:
            proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.inference", env=env, cwd=ROOT,
                                                        stdout=log, stderr=asyncio.subprocess.STDOUT)
        target = f"127.0.0.1:{inference_port}"
        try:
            async def serving() -> bool:
                return await health_status(target) == "SERVING"

            await eventually(serving, timeout_s=60)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}") as scrape, \
                    channel(target) as ch:
                async def value(name: str, **labels: str) -> float | None:
                    return prometheus_value((await scrape.get("/metrics")).text, name, **labels)

                assert await value(IN_FLIGHT_METRIC) == 0
                stub = inference_pb2_grpc.InferenceServiceStub(ch)  # type: ignore[no-untyped-call]
                gate.clear()  # the request waits in model resolution (the registry's answer is held back)
                call = asyncio.ensure_future(stub.Query(inference_pb2.QueryRequest(
                    caller=common_pb2.Caller(tenant_id="t_metrics", key_id="k", scopes=["app"]),
                    image=image_of(0), question="how many shapes are there?")))
                async def in_flight() -> bool:
                    return await value(IN_FLIGHT_METRIC) == 1

                await eventually(in_flight, timeout_s=10)
                gate.set()
                answer = await call
                assert answer.request_id
                assert await value(IN_FLIGHT_METRIC) == 0
                assert await value("dreamforge_inference_request_duration_milliseconds_count", skill="query") == 1
                served_ms = await value("dreamforge_inference_request_duration_milliseconds_sum", skill="query")
                assert served_ms is not None and served_ms >= answer.latency_ms * 0.99

                # the event bus counts what its durable consumers handled, dead letters apart
                nc = await nats.connect(nats_url)
                try:
                    update = events_pb2.ModelUpdated(meta=new_meta("t_metrics", "registry", "m1"), model_id="mdl_m",
                                                     alias="production", version=1, action="promote")
                    await nc.jetstream().publish(MODEL_UPDATED.subject("t_metrics"), update.SerializeToString())
                    await nc.jetstream().publish(MODEL_UPDATED.subject("t_metrics"), b"\xff not protobuf")
                finally:
                    await nc.close()

                async def counted() -> bool:
                    text = (await scrape.get("/metrics")).text
                    acked = prometheus_value(text, "dreamforge_events_consumed_total", consumer="inference-routes",
                                             outcome="acked")
                    dead = prometheus_value(text, "dreamforge_events_consumed_total", consumer="inference-routes",
                                            outcome="dead_lettered")
                    return (acked or 0) >= 1 and (dead or 0) >= 1

                await eventually(counted, timeout_s=15)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, (tmp_path / "inference.log").read_text()[-3000:]
