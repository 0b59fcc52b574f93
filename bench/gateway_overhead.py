"""Gateway overhead: the bare model call next to the same request through the HTTP gateway.

Same model, same requests, same run: each request is answered once by `Skills` in this
process (no service, no network) and once through the whole platform started by
`dreamforge up` machinery (HTTP → gateway auth/rate limit/validation → gRPC → inference →
outbox events), for each skill in turn. Blocks run bare, HTTP, bare (A-B-A) so drift in
machine load shows up as a difference between the two bare blocks, and no bare call overlaps
the platform's own after-request work (event relay, consumers). Prints p50/p99 and the
overhead at p50 per skill (target: ≤ 15% at concurrency 1), and the CPU time each process
spent per HTTP request, which says where the overhead goes.

    python bench/gateway_overhead.py [--model models/default] [--requests 60] [--threads N]
                                     [--skills query,point,detect,caption] [--gap-ms 0]
                                     [--client stdlib|httpx]

The overhead is a fixed cost per request, so its share depends on how long the model takes:
a one-word query answer is the worst case, a beam-searched caption the best.
`--gap-ms` waits before every call of both paths (not timed), so the platform's after-request
work (event relay, consumers) finishes before the next request: back to back (0) it competes with
the next request for the cores. The bare calls wait as long, because a call that starts from an
idle machine is slower than one right after another (caches, clocks): on 2 cores a detect 4.1 ms
and a query 2.6 ms slower after 150 ms idle, paired call by call; without the same wait, the
bare block would run warm and the HTTP calls cold. `--client` picks the HTTP client that times
the requests: the standard library's (default; the least a client can add, see
`benchlib.StdlibClient`) or httpx (about half a millisecond more per request here).
`--threads N` gives both paths N torch threads (`torch.set_num_threads` here,
`DREAMFORGE_TORCH_THREADS` for the inference service); by default each path uses its own
default: torch's for the bare call, the inference service's for HTTP (`serving_threads`: one
fewer, leaving a core to the platform's other processes, unless the model has 100 M parameters or more).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform as host
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from benchlib import CLIENTS, app_key_headers, chosen_skills, percentile, platform_on_free_ports, timing_client

from dreamforge.images import to_data_url
from dreamforge.supervisor import Platform
from dreamforge.world import get_sample

ROOT = Path(__file__).resolve().parents[1]
SKILLS = ("query", "point", "detect", "caption")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Case:
    """One request, as a bare call and as an HTTP body, and how to compare their answers."""

    bare: Callable[[], Any]
    body: dict[str, Any]
    answer_of: Callable[[dict[str, Any]], Any]


def cases(skills: Any, skill: str, n: int) -> list[Case]:
    """`n` test-split requests for `skill`; detect and point name an object that is in the image."""
    out = []
    for i in range(n):
        sample = get_sample("test", i)
        image, url = sample.image, to_data_url(sample.image)
        if skill == "query":
            question = sample.questions()[i % len(sample.questions())].question
            out.append(Case(lambda im=image, q=question: skills.query(im, q), {"image_url": url, "question": question},
                            lambda r: r["answer"]))
        elif skill == "caption":
            out.append(Case(lambda im=image: skills.caption(im), {"image_url": url}, lambda r: r["caption"]))
        else:
            name = sample.objects[i % len(sample.objects)].name
            method = getattr(skills, skill)
            key = "objects" if skill == "detect" else "points"
            out.append(Case(lambda im=image, o=name, m=method: [_rounded(x) for x in m(im, o)],
                            {"image_url": url, "object": name},
                            lambda r, k=key: [_rounded(x.values()) for x in r[k]]))
    return out


def _rounded(coordinates: Any) -> tuple[float, ...]:
    """Coordinates as compared: the gateway's JSON and the bare tuples agree to 3 decimals."""
    return tuple(round(float(v), 3) for v in coordinates)


def timed_bare(requests: list[Case], gap_s: float = 0.0) -> tuple[list[float], list[Any]]:
    times, answers = [], []
    for case in requests:
        if gap_s:
            time.sleep(gap_s)
        t0 = time.perf_counter()
        answers.append(case.bare())
        times.append((time.perf_counter() - t0) * 1000)
    return times, answers


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def platform_pids(platform: Platform) -> dict[str, int]:
    pids = {name: child.process.pid for name, child in platform.children.items() if child.process is not None}
    for service in platform.infra:
        if service.process is not None:
            pids[service.name] = service.process.pid
    pids["bench (HTTP client)"] = os.getpid()
    return pids


async def main(model_dir: Path, n: int, threads: int, skill_names: list[str], gap_s: float, client_name: str) -> None:
    import torch

    from dreamforge.model.skills import Skills

    if threads:
        torch.set_num_threads(threads)
        os.environ["DREAMFORGE_TORCH_THREADS"] = str(threads)

    skills = Skills.from_pretrained(model_dir)
    requests = {skill: cases(skills, skill, n) for skill in skill_names}
    results: dict[str, dict[str, list[float]]] = {}
    cpu_ms: dict[str, dict[str, float]] = {}

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DREAMFORGE_DEFAULT_MODEL"] = str(model_dir)
        # Never refused, with the default burst (60): a Redis round trip leases 6 tokens, as by default.
        os.environ["DREAMFORGE_RATE_LIMIT_PER_MINUTE"] = "100000"
        os.environ.pop("DREAMFORGE_RATE_LIMIT_BURST", None)
        settings = platform_on_free_ports(Path(tmp))
        platform = Platform(settings, say=lambda _line: None)
        await platform.start()
        try:
            pids = platform_pids(platform)
            async with httpx.AsyncClient(base_url=platform.url, timeout=60) as admin:
                auth = await app_key_headers(admin, platform.admin_key())
            client = timing_client(client_name, platform.url)
            try:
                for skill, batch in requests.items():
                    batch[0].bare()  # warm-up, both paths
                    (await client.post(f"/v1/{skill}", json=batch[0].body, headers=auth)).raise_for_status()
                    bare_a, expected = timed_bare(batch, gap_s)
                    await asyncio.sleep(2)  # let the platform finish its after-request work
                    http, inside = [], []
                    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                    for case, answer in zip(batch, expected, strict=True):
                        if gap_s:
                            await asyncio.sleep(gap_s)
                        t0 = time.perf_counter()
                        response = await client.post(f"/v1/{skill}", json=case.body, headers=auth)
                        http.append((time.perf_counter() - t0) * 1000)
                        response.raise_for_status()
                        inside.append(response.json()["latency_ms"])
                        assert case.answer_of(response.json()) == answer, f"gateway {skill} differs from the bare call"
                    await asyncio.sleep(2)  # the last request's after-work counts too
                    cpu_ms[skill] = {name: (cpu_seconds(pid) - before[name]) * 1000 / len(batch)
                                     for name, pid in pids.items()}
                    bare_b, _ = timed_bare(batch, gap_s)
                    results[skill] = {"bare_a": bare_a, "bare_b": bare_b, "http": http, "inside": inside}
            finally:
                await client.aclose()
        finally:
            await asyncio.to_thread(platform.stop)

    print(f"# Gateway overhead — {n} requests per skill, concurrency 1, gap {gap_s * 1000:.0f} ms, model "
          f"{model_dir.name}, {client_name} HTTP client, {host.machine()}, {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads, Python {host.python_version()}")
    print(f"{'skill':<9}{'bare p50':>10}{'bare p99':>10}{'HTTP p50':>10}{'HTTP p99':>10}{'inference p50':>15}"
          f"{'overhead p50':>22}{'drift (bare A / B p50)':>26}")
    for skill, r in results.items():
        bare = r["bare_a"] + r["bare_b"]
        p50_bare, p50_http = statistics.median(bare), statistics.median(r["http"])
        overhead = f"{p50_http - p50_bare:+.1f} ms ({(p50_http / p50_bare - 1) * 100:+.0f}%)"
        drift = f"{statistics.median(r['bare_a']):.1f} / {statistics.median(r['bare_b']):.1f}"
        print(f"{skill:<9}{p50_bare:>10.1f}{percentile(bare, 0.99):>10.1f}{p50_http:>10.1f}"
              f"{percentile(r['http'], 0.99):>10.1f}{statistics.median(r['inside']):>15.1f}{overhead:>22}{drift:>26}")
    print("(inference p50: the time the inference service itself reports, `latency_ms`: model resolution, "
          "generation, the events' commit)")
    print("\nCPU ms per HTTP request, by process (includes each request's after-work):")
    names = list(next(iter(cpu_ms.values())))
    print(f"{'process':<22}" + "".join(f"{skill:>10}" for skill in cpu_ms))
    for name in names:
        print(f"{name:<22}" + "".join(f"{cpu_ms[skill][name]:>10.1f}" for skill in cpu_ms))
    print(f"{'all':<22}" + "".join(f"{sum(cpu_ms[skill].values()):>10.1f}" for skill in cpu_ms))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--threads", type=int, default=0, help="torch threads of both paths (0: each its own)")
    parser.add_argument("--skills", default=",".join(SKILLS), help="comma-separated, from " + ", ".join(SKILLS))
    parser.add_argument("--gap-ms", type=float, default=0.0, help="untimed wait before every call, bare and HTTP")
    parser.add_argument("--client", choices=CLIENTS, default=CLIENTS[0], help="the HTTP client that times the calls")
    args = parser.parse_args()
    chosen = chosen_skills(parser, args.skills, SKILLS)
    asyncio.run(main(args.model.resolve(), args.requests, args.threads, chosen, args.gap_ms / 1000, args.client))
