"""Triton dynamic batching: throughput with and without it, same requests, same server, same run.

What it measures: one private Triton server (the cached pytriton binary, started by this script)
holding two models of the same checkpoint through the triton runtime -- `batched` (dynamic
batcher, max_batch_size 32, 5 ms queue delay unless `--queue-delay-ms`) and `unbatched`
(max_batch_size 1: one request per execute). For each concurrency C in 1, 8, 32, C clients send
the same list of query requests (different test images and questions; a quarter of them at C=1)
through `TritonRuntime.run`;
printed: requests/s, p50 and p99 latency, and the mean batch Triton formed (requests / execute()
calls, from its statistics API). Each cell runs `--repeat` times in rounds that alternate the two
models; a cell prints its median round, and the ratios are paired round by round.
Figures are printed, not asserted.

    python bench/inference_batching.py [--model models/default] [--requests 256] [--threads N]
        [--queue-delay-ms MS] [--repeat 3]

`--threads N` fixes the models' torch threads (0, the default: the runtime's own choice per batch,
`serving_threads`).

Without --model it uses models/default when built, else a random-weight model of the default
architecture (same size and speed; its answers are nonsense and always run to the token limit).
On a machine with an NVIDIA GPU the models run as KIND_GPU instances on cuda.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchlib import pct

from dreamforge.triton_server import PYTRITON_VERSION
from dreamforge.world import get_sample
from services.inference.runtime.base import SkillCall
from services.inference.runtime.triton_host import gpu_visible, shutdown_hosts
from services.inference.runtime.triton_runtime import TritonRuntime
from services.inference.settings import DEFAULT_MODEL_DIR

CONCURRENCY = (1, 8, 32)


def random_default_model(out: Path) -> Path:
    from dreamforge.model.arch import DEFAULT_SPEC, build_config, build_model, build_processor
    from dreamforge.model.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    build_model(build_config(DEFAULT_SPEC, tokenizer), seed=0).save_pretrained(out)
    build_processor(DEFAULT_SPEC, tokenizer).save_pretrained(out)
    return out


def requests(n: int) -> list[SkillCall]:
    calls = []
    for i in range(n):
        sample = get_sample("test", i)
        questions = sample.questions()
        calls.append(SkillCall("query", sample.image, questions[i % len(questions)].question))
    return calls


async def run_clients(runtime: TritonRuntime, calls: list[SkillCall], clients: int) -> tuple[float, list[float]]:
    """`clients` concurrent callers work through `calls`; returns (seconds, latencies)."""
    queue: asyncio.Queue[SkillCall] = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)
    latencies: list[float] = []

    async def client() -> None:
        while not queue.empty():
            call = queue.get_nowait()
            started = time.perf_counter()
            await runtime.run(call)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started, latencies




async def main(model: Path | None, n: int, threads: int, delay_ms: float, repeat: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="dreamforge-bench-triton-"))
    built = (DEFAULT_MODEL_DIR / "config.json").exists()
    base = model or (DEFAULT_MODEL_DIR if built else random_default_model(work / "model"))
    kind = "" if model or built else " (random weights, default architecture)"
    configs = {"unbatched": 1, "batched": 32}
    runtimes = {name: TritonRuntime(base, memory_budget_bytes=1 << 28, max_batch_size=size,
                                    batch_window_s=delay_ms / 1000, work_dir=work / "triton", keep_warm_s=0,
                                    torch_threads=threads)
                for name, size in configs.items()}
    started = time.perf_counter()
    for runtime in runtimes.values():
        await runtime.start()
    load_s = time.perf_counter() - started
    calls = requests(n)
    for runtime in runtimes.values():  # warm-up: first generate calls allocate
        await asyncio.gather(*(runtime.run(call) for call in calls[:8]))

    rounds: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {}
    for _ in range(repeat):  # rounds alternate the two models, so drifting machine load hits both alike
        for clients in CONCURRENCY:
            for name, runtime in runtimes.items():
                before = await _settled(runtime)
                cell = calls if clients > 1 else calls[: max(8, n // 4)]
                seconds, latencies = await run_clients(runtime, cell, clients)
                after = await _settled(runtime, before[0] + len(latencies))
                batch = (after[0] - before[0]) / max(1, after[1] - before[1])
                rounds.setdefault((name, clients), []).append(
                    (len(latencies) / seconds, pct(latencies, 0.5), pct(latencies, 0.99), batch))
    rows = {key: statistics.median_low(cells) for key, cells in rounds.items()}  # the median round, by req/s
    for runtime in runtimes.values():
        await runtime.close()
    shutdown_hosts()
    shutil.rmtree(work, ignore_errors=True)

    cores = os.cpu_count()
    device = "cuda (KIND_GPU)" if gpu_visible() else "CPU (KIND_CPU)"
    print(f"`python {' '.join(shlex.quote(a) for a in sys.argv)}` — {cores} cores ({platform.machine()}), "
          f"Python {platform.python_version()}, Triton 2.51 (nvidia-pytriton {PYTRITON_VERSION}), {device}; "
          f"model {base}{kind}; {n} query requests per cell; torch threads {threads or 'per batch'}; "
          f"batched queue delay {delay_ms:g} ms; "
          f"two models loaded in {load_s:.0f}s\n")
    print("| concurrency | dynamic batching | requests/s | p50 ms | p99 ms | mean batch |")
    print("|---:|---|---:|---:|---:|---:|")
    for clients in CONCURRENCY:
        for name in configs:
            rps, p50, p99, batch = rows[name, clients]
            flag = "on (max 32)" if name == "batched" else "off (max 1)"
            print(f"| {clients} | {flag} | {rps:.1f} | {p50:.0f} | {p99:.0f} | {batch:.1f} |")
    for clients in CONCURRENCY:
        ratios = [b[0] / u[0] for b, u in zip(rounds["batched", clients], rounds["unbatched", clients], strict=True)]
        each = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"\nconcurrency {clients}: batched / unbatched throughput = {statistics.median(ratios):.2f}x "
              f"(median of {repeat} paired rounds: {each})", end="")
    print()


async def _settled(runtime: TritonRuntime, requests: int = 0) -> tuple[int, int]:
    """Triton counts a request just after its response: wait until `requests` are counted and the
    figures stop moving."""
    stats = await runtime.statistics()
    for _ in range(100):
        await asyncio.sleep(0.1)
        latest = await runtime.statistics()
        if latest == stats and latest[0] >= requests:
            break
        stats = latest
    return stats


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="checkpoint directory (default: models/default)")
    parser.add_argument("--requests", type=int, default=256,
                        help="requests per measurement (concurrency 8 and 32; a quarter at 1)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of the models (0: chosen per batch)")
    parser.add_argument("--queue-delay-ms", type=float, default=5.0,
                        help="the batched model's max queue delay (the platform's batch_window_ms)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds; each cell prints its median round (this machine's load drifts)")
    args = parser.parse_args()
    asyncio.run(main(args.model, args.requests, args.threads, args.queue_delay_ms, max(1, args.repeat)))
