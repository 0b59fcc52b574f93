"""Inference latency: the bare model next to the running inference service, same requests, same run.

What it measures (registry + inference + a NATS JetStream server started by this script,
all in this process; the model on CPU unless CUDA is visible):
  (a) latency   one query at a time: `Skills.query` called directly vs the same request end to end
                through the inference gRPC service (validation, image decode, resolution, runtime
                queue, outbox events); interleaved request by request, p50 / p99
  (e) batching  CONCURRENCY clients at once through the service, micro-batching off (batch of 1)
                vs on (DREAMFORGE_MAX_BATCH_SIZE): throughput, p50 latency, mean batch size
  (c) hot swap  a new version with a LoRA adapter is promoted while one client keeps asking:
                promote call -> first answer served by the new version (adapter fetched from the
                registry, verified, unpacked, loaded), median of several promotions
  (d) memory    parameter bytes of one loaded adapter (what the LRU budget counts) and the process
                RSS growth per adapter, for two LoRA shapes

    python bench/inference_latency.py [--model models/default] [--requests 40] [--concurrency 8]

Without --model it uses models/default when built, else a random-weight model of the default
architecture (same size and speed; its answers are nonsense and always run to the token limit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from benchlib import pct

from dreamforge.adapters import make_lora_adapter, pack_adapter
from dreamforge.grpcio import channel
from dreamforge.images import encode_png
from dreamforge.infra import ensure_nats, free_port
from dreamforge.model.skills import Skills
from dreamforge.runtime import in_process
from dreamforge.settings import PlatformSettings
from dreamforge.v1 import common_pb2, inference_pb2, inference_pb2_grpc, registry_pb2, registry_pb2_grpc
from dreamforge.world import get_sample
from services.inference.main import build as build_inference
from services.inference.runtime.base import AdapterRef
from services.inference.runtime.torch_runtime import TorchRuntime
from services.inference.settings import DEFAULT_MODEL_DIR, InferenceSettings
from services.registry.main import build as build_registry

CALLER = common_pb2.Caller(tenant_id="t_bench", key_id="k_bench")






def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def random_default_model(out: Path) -> Path:
    from dreamforge.model.arch import DEFAULT_SPEC, build_config, build_model, build_processor
    from dreamforge.model.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    build_model(build_config(DEFAULT_SPEC, tokenizer), seed=0).save_pretrained(out)
    build_processor(DEFAULT_SPEC, tokenizer).save_pretrained(out)
    return out


def requests(n: int, size: int) -> list[tuple[Any, bytes, str]]:
    """(image, PNG bytes, question) for n held-out world images."""
    out = []
    for i in range(n):
        sample = get_sample("test", i, size)
        out.append((sample.image, encode_png(sample.image), sample.questions()[0].question))
    return out


async def latency(skills: Skills, stub: Any, reqs: list[tuple[Any, bytes, str]]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"bare": [], "service": []}
    for i, (image, png, question) in enumerate(reqs):
        start = time.perf_counter()
        await asyncio.to_thread(skills.query, image, question)
        times["bare"].append(time.perf_counter() - start)
        start = time.perf_counter()
        await stub.Query(inference_pb2.QueryRequest(caller=CALLER, request_id=f"lat-{i}",
                                                    image=inference_pb2.Image(data=png), question=question))
        times["service"].append(time.perf_counter() - start)
    return times


async def concurrent(stub: Any, reqs: list[tuple[Any, bytes, str]], clients: int, tag: str,
                     ) -> tuple[float, list[float]]:
    times: list[float] = []

    async def client(c: int) -> None:
        for i, (_, png, question) in enumerate(reqs):
            start = time.perf_counter()
            await stub.Query(inference_pb2.QueryRequest(caller=CALLER, request_id=f"{tag}-{c}-{i}",
                                                        image=inference_pb2.Image(data=png), question=question))
            times.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return len(times) / (time.perf_counter() - start), times


async def hot_swaps(stub: Any, registry: Any, base: Path, work: Path, png: bytes, rounds: int) -> list[float]:
    await registry.CreateModel(registry_pb2.CreateModelRequest(caller=CALLER, name="swap"))
    await registry.CreateVersion(registry_pb2.CreateVersionRequest(caller=CALLER, model="swap"))
    await registry.Promote(registry_pb2.PromoteRequest(caller=CALLER, model="swap", version=1))
    request = inference_pb2.QueryRequest(caller=CALLER, model=inference_pb2.Target(reference="swap"),
                                         image=inference_pb2.Image(data=png), question="how many shapes are there?")
    await stub.Query(request)
    out = []
    for r in range(rounds):
        packed = pack_adapter(make_lora_adapter(base, work / f"swap{r}", seed=100 + r))
        version = (await registry.CreateVersion(registry_pb2.CreateVersionRequest(
            caller=CALLER, model="swap", artifact=packed))).version
        start = time.perf_counter()
        await registry.Promote(registry_pb2.PromoteRequest(caller=CALLER, model="swap", version=version))
        while (await stub.Query(request)).version != version:
            pass
        out.append(time.perf_counter() - start)
    return out


async def adapter_memory(base: Path, work: Path, copies: int = 50) -> list[tuple[str, int, int, int]]:
    """(shape, parameter bytes, RSS growth per adapter, artifact bytes): `copies` adapters of each
    shape loaded side by side (one adapter's files under several names: same size, no rebuilds)."""
    shapes = {"r=8, q/v": (8, r".*text_model.*\.(q_proj|v_proj)"),
              "r=16, q/k/v/o": (16, r".*text_model.*\.(q_proj|k_proj|v_proj|o_proj)")}
    out = []
    for label, (r, target) in shapes.items():
        runtime = TorchRuntime(base, memory_budget_bytes=1 << 40)
        await runtime.start()
        path = make_lora_adapter(base, work / f"mem{r}", seed=r, r=r, alpha=2 * r, target_modules=target)
        await runtime.load_adapter(AdapterRef(f"warm{r}", path))  # the PEFT wrapper itself, not counted
        before = rss_bytes()
        for i in range(copies):
            await runtime.load_adapter(AdapterRef(f"a{r}-{i}", path))
        growth = (rss_bytes() - before) // copies
        size = (await runtime.loaded_adapters())[-1].memory_bytes
        out.append((label, size, growth, len(pack_adapter(path))))
        await runtime.close()
    return out


async def main(model: Path | None, n: int, clients: int, swaps: int) -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    work = Path(tempfile.mkdtemp(prefix="dreamforge-bench-"))
    built = model is not None or (DEFAULT_MODEL_DIR / "config.json").is_file()
    base = model or (DEFAULT_MODEL_DIR if built else random_default_model(work / "model"))
    nats_server = ensure_nats(f"nats://127.0.0.1:{free_port()}", work / "nats")
    try:
        async with in_process("registry", build_registry, PlatformSettings(
                home=work / "registry", nats_url=nats_server.url, log_level="WARNING")) as registry_rt:
            settings = InferenceSettings(home=work / "inference", nats_url=nats_server.url, log_level="WARNING",
                                         registry_addr=f"127.0.0.1:{registry_rt.port}", default_model=base)
            async with in_process("inference", build_inference, settings) as inference_rt, \
                    channel(f"127.0.0.1:{inference_rt.port}") as ich, \
                    channel(f"127.0.0.1:{registry_rt.port}") as rch:
                stub = inference_pb2_grpc.InferenceServiceStub(ich)  # type: ignore[no-untyped-call]
                registry = registry_pb2_grpc.RegistryServiceStub(rch)  # type: ignore[no-untyped-call]
                skills = await asyncio.to_thread(Skills.from_pretrained, base)
                size = skills.processor.image_processor.max_image_size["longest_edge"]
                reqs = requests(n, size)
                await latency(skills, stub, reqs[:3])  # warm both paths
                lat = await latency(skills, stub, reqs)
                runtime = inference_rt.state.service.pool.loaded()[0]
                per_client = reqs[: max(5, n // 4)]
                runtime.batcher.max_batch = 1
                await concurrent(stub, per_client[:2], clients, "warm")
                off = await concurrent(stub, per_client, clients, "off")
                runtime.batcher.max_batch, runtime.batcher.batch_sizes = settings.max_batch_size, []
                on = await concurrent(stub, per_client, clients, "on")
                mean_batch = statistics.mean(runtime.batcher.batch_sizes)
                swap = await hot_swaps(stub, registry, base, work, reqs[0][1], swaps)
        memory = await adapter_memory(base, work)
    finally:
        nats_server.stop()

    kind = "" if built else " (random weights, default architecture)"
    print(f"# Inference latency — model {base}{kind}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}")
    print(f"\n(a) one query at a time, {n} requests, interleaved")
    print(f"{'path':<44}{'p50 ms':>10}{'p99 ms':>10}")
    for name, label in (("bare", "bare Skills.query (in-process)"), ("service", "inference gRPC service, end to end")):
        print(f"{label:<44}{pct(lat[name], 0.5):>10.1f}{pct(lat[name], 0.99):>10.1f}")
    print(f"{'service overhead (p50 difference)':<44}{pct(lat['service'], 0.5) - pct(lat['bare'], 0.5):>10.1f}")
    print(f"\n(e) {clients} concurrent clients x {len(per_client)} queries through the service")
    print(f"{'micro-batching':<44}{'req/s':>10}{'p50 ms':>10}{'batch':>8}")
    print(f"{'off (batches of 1)':<44}{off[0]:>10.1f}{pct(off[1], 0.5):>10.1f}{1:>8.1f}")
    print(f"{f'on (up to {settings.max_batch_size}, {settings.batch_window_ms:g} ms window)':<44}"
          f"{on[0]:>10.1f}{pct(on[1], 0.5):>10.1f}{mean_batch:>8.1f}")
    print(f"\n(c) hot swap, promote -> first answer from the new adapter ({swaps} promotions)")
    print(f"median {statistics.median(swap) * 1000:.0f} ms, max {max(swap) * 1000:.0f} ms")
    print("\n(d) memory per loaded adapter (LoRA on the text model's attention; RSS: mean over 50 loaded)")
    print(f"{'LoRA':<20}{'parameter bytes':>18}{'RSS growth':>14}{'artifact bytes':>16}")
    for label, params, growth, artifact in memory:
        print(f"{label:<20}{params:>18,}{growth:>14,}{artifact:>16,}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None, help="base checkpoint directory")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--swaps", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.model, args.requests, args.concurrency, args.swaps))
