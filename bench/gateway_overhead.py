"""Gateway overhead: the bare model call next to the same request through the HTTP gateway.

Same model, same requests, same run: each query is answered once by `Skills.query` in this
process (no service, no network) and once through the whole platform started by
`dreamforge up` machinery (HTTP → gateway auth/rate limit/validation → gRPC → inference →
outbox events). Blocks run bare, HTTP, bare (A-B-A) so drift in machine load shows up as a
difference between the two bare blocks, and no bare call overlaps the platform's own
after-request work (event relay, consumers). Prints p50/p99 and the overhead at p50
(target: ≤ 15% at concurrency 1).

    python bench/gateway_overhead.py [--model models/default] [--requests 60] [--threads N]

`--threads N` gives both paths N torch threads (`torch.set_num_threads` here,
`DREAMFORGE_TORCH_THREADS` for the inference service); by default both use torch's default.
On a machine whose cores are busy with other work, 1 thread makes both paths steadier: a
2-thread generation stalls at every parallel region whose second thread is not scheduled.
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
from benchlib import percentile, platform_on_free_ports

from dreamforge.images import to_data_url
from dreamforge.supervisor import Platform
from dreamforge.world import get_sample

ROOT = Path(__file__).resolve().parents[1]




def timed_bare(skills: object, requests: list[tuple[object, str]]) -> tuple[list[float], list[str]]:
    times, answers = [], []
    for image, question in requests:
        t0 = time.perf_counter()
        answers.append(skills.query(image, question))  # type: ignore[attr-defined]
        times.append((time.perf_counter() - t0) * 1000)
    return times, answers


async def main(model_dir: Path, n: int, threads: int) -> None:
    import torch

    from dreamforge.model.skills import Skills

    if threads:
        torch.set_num_threads(threads)
        os.environ["DREAMFORGE_TORCH_THREADS"] = str(threads)

    skills = Skills.from_pretrained(model_dir)
    requests = []
    for i in range(n):
        sample = get_sample("test", i)
        qa = sample.questions()[i % len(sample.questions())]
        requests.append((sample.image, qa.question))
    skills.query(requests[0][0], requests[0][1])  # warm-up

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DREAMFORGE_DEFAULT_MODEL"] = str(model_dir)
        os.environ["DREAMFORGE_RATE_LIMIT_PER_MINUTE"] = "100000"
        os.environ["DREAMFORGE_RATE_LIMIT_BURST"] = "1000"
        settings = platform_on_free_ports(Path(tmp))
        platform = Platform(settings, say=lambda _line: None)
        await platform.start()
        try:
            admin = {"Authorization": f"Bearer {platform.admin_key()}"}
            async with httpx.AsyncClient(base_url=platform.url, timeout=60) as client:
                tenant = (await client.post("/v1/admin/tenants", json={"name": "bench"}, headers=admin)).json()
                key = (await client.post("/v1/admin/keys", json={"tenant_id": tenant["id"], "scopes": ["app"]},
                                         headers=admin)).json()["key"]
                auth = {"Authorization": f"Bearer {key}"}
                bodies = [{"image_url": to_data_url(image), "question": q} for image, q in requests]
                await client.post("/v1/query", json=bodies[0], headers=auth)  # warm-up
                bare_a, expected = timed_bare(skills, requests)
                await asyncio.sleep(2)  # let the platform finish its after-request work
                http = []
                for body, answer in zip(bodies, expected, strict=True):
                    t0 = time.perf_counter()
                    response = await client.post("/v1/query", json=body, headers=auth)
                    http.append((time.perf_counter() - t0) * 1000)
                    response.raise_for_status()
                    assert response.json()["answer"] == answer, "gateway answer differs from the bare call"
                await asyncio.sleep(2)
                bare_b, _ = timed_bare(skills, requests)
                bare = bare_a + bare_b
        finally:
            await asyncio.to_thread(platform.stop)

    p50_bare, p50_http = statistics.median(bare), statistics.median(http)
    print(f"# Gateway overhead — {n} query requests, concurrency 1, model {model_dir.name}, "
          f"{host.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
          f"Python {host.python_version()}")
    print(f"{'path':<44}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'bare Skills.query (in-process)':<44}{p50_bare:>10.1f}{percentile(bare, 0.99):>10.1f}")
    print(f"{'HTTP gateway → inference (end to end)':<44}{p50_http:>10.1f}{percentile(http, 0.99):>10.1f}")
    print(f"bare blocks before/after (drift check): p50 {statistics.median(bare_a):.1f} / "
          f"{statistics.median(bare_b):.1f} ms")
    print(f"gateway overhead at p50: {p50_http - p50_bare:+.1f} ms ({(p50_http / p50_bare - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--threads", type=int, default=0, help="torch threads of both paths (0: torch's default)")
    args = parser.parse_args()
    asyncio.run(main(args.model.resolve(), args.requests, args.threads))
