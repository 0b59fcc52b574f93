"""Where a skill call's time goes, stage by stage, read from the platform's own traces.

Starts a whole platform (`dreamforge up` machinery) with `DREAMFORGE_TRACE_FILE` set, so every
service appends its spans to one JSON-lines file; sends each request back to back (concurrency 1)
with its own W3C `traceparent`; then reads each request's trace back and splits the time the
client waited into the stages between span boundaries:

    client → gateway span | auth | rate limit (Redis) | body, checks, quota → gRPC call |
    gRPC request | inference checks, route | batch queue → generating thread |
    model: processor inputs | model: generate | model: decode | → event loop | → record |
    events committed (outbox) | → response | gRPC response | gateway after the call | → client

The model's three stages come from the torch runtime's `model.generate` span. The same requests
also run bare, in this process, through the same runtime code on the calling thread
(`TorchRuntime.run_here`: same prompts, decoding and threads, no batcher, no event loop), before
and after the platform's block, so the model's own work in the service can be set beside the
bare call's: a difference there is the model running slower inside the platform, not a stage
around it.

    python bench/request_stages.py [--model models/default] [--requests 60]
                                   [--skills query,point,detect,caption] [--gap-ms 0]
                                   [--client stdlib|httpx]

`--gap-ms` waits before every request and every bare call (untimed), so the platform's
after-request work (outbox relay, billing and feedback consumers) is done before the next request
starts; back to back (0) it competes with the next request for the cores, and the difference says
how much. Bare calls wait as long because a call from an idle machine runs slower than one right
after another (see `bench/gateway_overhead.py`). `--client` picks the HTTP client that times the
requests, as there.

Recording spans costs time of its own, so totals run a little above `bench/gateway_overhead.py`,
which measures the overhead itself (bare model vs HTTP); this script says where it goes. All
processes share one machine clock (epoch nanoseconds), so boundaries across processes compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as host
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from benchlib import CLIENTS, app_key_headers, chosen_skills, percentile, platform_on_free_ports, timing_client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dreamforge.images import to_data_url
from dreamforge.supervisor import Platform
from dreamforge.tracing import configure_tracing
from dreamforge.world import get_sample
from services.inference.runtime.base import SkillCall
from services.inference.runtime.torch_runtime import TorchRuntime

ROOT = Path(__file__).resolve().parents[1]
SKILLS = ("query", "point", "detect", "caption")
INPUTS, GENERATE, DECODE = "model: processor inputs", "model: generate", "model: decode"
#: The model's own work: what the bare call does too.
MODEL_WORK = (INPUTS, GENERATE, DECODE)
#: (stage, span boundary it starts at, span boundary it ends at); "client.*" are the bench's own clock.
STAGES = (
    ("client → gateway span", "client.start", "http.start"),
    ("auth (API key)", "http.start", "rate_limit.start"),
    ("rate limit (Redis)", "rate_limit.start", "rate_limit.end"),
    ("body, checks, quota → gRPC call", "rate_limit.end", "call.start"),
    ("gRPC request", "call.start", "served.start"),
    ("inference: checks, route", "served.start", "generate.start"),
    ("batch queue → generating thread", "generate.start", "model.start"),
    (INPUTS, "model.start", "model.prepared"),
    (GENERATE, "model.prepared", "model.generated"),
    (DECODE, "model.generated", "model.end"),
    ("→ event loop", "model.end", "generate.end"),
    ("→ record", "generate.end", "record.start"),
    ("events committed (outbox)", "record.start", "record.end"),
    ("→ response", "record.end", "served.end"),
    ("gRPC response", "served.end", "call.end"),
    ("gateway after the call", "call.end", "http.end"),
    ("→ client", "http.end", "client.end"),
)


def request(skill: str, i: int) -> tuple[dict[str, Any], SkillCall]:
    """Test-split request `i` for `skill`: the HTTP body and the same call for the runtime."""
    sample = get_sample("test", i)
    out: dict[str, Any] = {"image_url": to_data_url(sample.image)}
    text = "normal"  # caption: the gateway's default length
    if skill == "query":
        text = out["question"] = sample.questions()[i % len(sample.questions())].question
    elif skill in ("detect", "point"):
        text = out["object"] = sample.objects[i % len(sample.objects)].name
    return out, SkillCall(skill, sample.image, text)  # type: ignore[arg-type]


def model_points(span: dict[str, Any]) -> dict[str, int]:
    """Boundaries inside a `model.generate` span, from its timing attributes (ns)."""
    attributes = span["attributes"]
    prepared = span["start_ns"] + round(attributes["model.inputs_ms"] * 1e6)
    return {"model.start": span["start_ns"], "model.prepared": prepared,
            "model.generated": prepared + round(attributes["model.generate_ms"] * 1e6), "model.end": span["end_ns"]}


def timed_bare(runtime: TorchRuntime, exporter: InMemorySpanExporter, calls: list[SkillCall],
               gap_s: float) -> dict[str, list[float]]:
    """The model's three stages for each call answered bare (`run_here`), from its `model.generate` span."""
    out: dict[str, list[float]] = {name: [] for name in MODEL_WORK}
    for call in calls:
        if gap_s:
            time.sleep(gap_s)
        exporter.clear()
        runtime.run_here([call])
        (span,) = [s for s in exporter.get_finished_spans() if s.name == "model.generate"]
        attributes = dict(span.attributes or {})
        for name, key in zip(MODEL_WORK, ("model.inputs_ms", "model.generate_ms", "model.decode_ms"), strict=True):
            out[name].append(float(attributes[key]))  # type: ignore[arg-type]
    return out


def boundaries(spans: list[dict[str, Any]], skill: str) -> dict[str, int] | None:
    """The span boundaries of one request's trace (ns), or None while its spans are incomplete."""
    method = f"InferenceService/{skill.capitalize()}"
    named = {
        "http": [s for s in spans if s["service"] == "gateway" and s["kind"] == "server"],
        "rate_limit": [s for s in spans if s["name"] == "gateway.rate_limit"],
        "call": [s for s in spans if s["kind"] == "client" and s["name"].endswith(method)],
        "served": [s for s in spans if s["kind"] == "server" and s["name"].endswith(method)],
        "generate": [s for s in spans if s["name"] == "inference.generate"],
        "record": [s for s in spans if s["name"] == "inference.record"],
        "model": [s for s in spans if s["name"] == "model.generate"],
    }
    if any(len(found) != 1 for found in named.values()):
        return None
    out = model_points(named.pop("model")[0])
    for key, (span,) in named.items():
        out[f"{key}.start"], out[f"{key}.end"] = span["start_ns"], span["end_ns"]
    return out


def read_traces(path: Path) -> dict[str, list[dict[str, Any]]]:
    traces: dict[str, list[dict[str, Any]]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            span = json.loads(line)
            traces.setdefault(span["trace_id"], []).append(span)
    return traces


async def main(model_dir: Path, n: int, skill_names: list[str], gap_s: float, client_name: str) -> None:
    stages: dict[str, dict[str, list[float]]] = {}
    bare: dict[str, dict[str, list[float]]] = {}
    exporter = InMemorySpanExporter()
    configure_tracing("bench", exporter=exporter)
    runtime = TorchRuntime(model_dir, memory_budget_bytes=0)
    with tempfile.TemporaryDirectory() as tmp:
        trace_file = Path(tmp) / "spans.jsonl"
        os.environ["DREAMFORGE_DEFAULT_MODEL"] = str(model_dir)
        # Never refused, with the default burst (60): a Redis round trip leases 6 tokens, as by default.
        os.environ["DREAMFORGE_RATE_LIMIT_PER_MINUTE"] = "100000"
        os.environ.pop("DREAMFORGE_RATE_LIMIT_BURST", None)
        os.environ["DREAMFORGE_TRACE_FILE"] = str(trace_file)
        platform = Platform(platform_on_free_ports(Path(tmp) / "home"), say=lambda _line: None)
        await platform.start()
        sent: dict[str, list[tuple[str, int, int]]] = {skill: [] for skill in skill_names}
        try:
            async with httpx.AsyncClient(base_url=platform.url, timeout=60) as admin:
                auth = await app_key_headers(admin, platform.admin_key())
            client = timing_client(client_name, platform.url)
            try:
                for skill in skill_names:
                    requests, calls = zip(*(request(skill, i) for i in range(n)), strict=True)
                    runtime.run_here([calls[0]])  # warm-up, both paths
                    (await client.post(f"/v1/{skill}", json=requests[0], headers=auth)).raise_for_status()
                    bare_a = timed_bare(runtime, exporter, list(calls), gap_s)
                    await asyncio.sleep(2)  # let the platform finish its after-request work
                    for body in requests:
                        if gap_s:
                            await asyncio.sleep(gap_s)
                        trace_id = secrets.token_hex(16)
                        headers = {**auth, "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
                        t0 = time.time_ns()
                        response = await client.post(f"/v1/{skill}", json=body, headers=headers)
                        t1 = time.time_ns()
                        response.raise_for_status()
                        sent[skill].append((trace_id, t0, t1))
                    await asyncio.sleep(2)
                    bare_b = timed_bare(runtime, exporter, list(calls), gap_s)
                    bare[skill] = {name: bare_a[name] + bare_b[name] for name in MODEL_WORK}
            finally:
                await client.aclose()
            deadline = time.monotonic() + 30  # spans are exported in batches, every few seconds
            while True:
                traces = read_traces(trace_file)
                complete = {trace_id: b for skill, requests in sent.items() for trace_id, _, _ in requests
                            if (b := boundaries(traces.get(trace_id, []), skill)) is not None}
                if len(complete) == sum(map(len, sent.values())) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
        finally:
            await asyncio.to_thread(platform.stop)

    for skill, requests in sent.items():
        stages[skill] = {name: [] for name, _, _ in STAGES} | {"total (client)": []}
        for trace_id, t0, t1 in requests:
            if trace_id not in complete:
                continue
            points = complete[trace_id] | {"client.start": t0, "client.end": t1}
            for name, start, end in STAGES:
                stages[skill][name].append((points[end] - points[start]) / 1e6)
            stages[skill]["total (client)"].append((t1 - t0) / 1e6)

    print(f"# Request stages — {n} requests per skill, concurrency 1, gap {gap_s * 1000:.0f} ms, from spans; "
          f"model {model_dir.name}, {client_name} HTTP client, {host.machine()}, {os.cpu_count()} cores, "
          f"Python {host.python_version()} "
          f"(the inference service's own torch threads)")
    def row(name: str, table: dict[str, dict[str, list[float]]]) -> None:
        cells = [f"{statistics.median(v[name]):.2f} / {percentile(v[name], 0.9):.2f}" if v[name] else "—"
                 for v in table.values()]
        print(f"{name:<36}" + "".join(f"{c:>16}" for c in cells))

    def work(values: dict[str, list[float]]) -> list[float]:
        return [sum(parts) for parts in zip(*(values[name] for name in MODEL_WORK), strict=True)]

    print(f"{'stage (p50 / p90 ms)':<36}" + "".join(f"{skill:>16}" for skill in stages))
    for name in [*(s for s, _, _ in STAGES), "total (client)"]:
        row(name, stages)
    print("bare, the same requests (run_here on this process's main thread, before and after):")
    for name in MODEL_WORK:
        row(name, bare)
    for v in (*stages.values(), *bare.values()):
        v["model's work"] = work(v)
    print("p50, ms:")
    row_p50 = {
        "model's work, served": [stages[s]["model's work"] for s in stages],
        "model's work, bare": [bare[s]["model's work"] for s in stages],
        "all but the model's work": [[t - m for t, m in zip(stages[s]["total (client)"], stages[s]["model's work"],
                                                            strict=True)] for s in stages],
    }
    for name, columns in row_p50.items():
        print(f"{name:<36}" + "".join(f"{statistics.median(c):>16.2f}" if c else f"{'—':>16}" for c in columns))
    missing = sum(map(len, sent.values())) - len(complete)
    if missing:
        print(f"({missing} requests' traces were incomplete and left out)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--skills", default=",".join(SKILLS), help="comma-separated, from " + ", ".join(SKILLS))
    parser.add_argument("--gap-ms", type=float, default=0.0, help="untimed wait before every call, bare and HTTP")
    parser.add_argument("--client", choices=CLIENTS, default=CLIENTS[0], help="the HTTP client that times the calls")
    args = parser.parse_args()
    chosen = chosen_skills(parser, args.skills, SKILLS)
    asyncio.run(main(args.model.resolve(), args.requests, chosen, args.gap_ms / 1000, args.client))
