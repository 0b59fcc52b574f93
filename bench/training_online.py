"""The online loop, timed: N ratings in -> the online trigger's GRPO job -> a new version serving;
and serving latency while that job trains vs idle (a peer blocks inference while it trains).

Runs NATS (started here), the registry, inference (default model) and the trainer in this process;
the training job runs in the trainer's worker process, as in production. Ratings are the
`reward.scored` events the feedback service publishes (same payloads, images in the platform's
image store); load is CLIENTS concurrent `Query` calls on the inference service's gRPC API.

    python bench/training_online.py [--n 8] [--steps 400] [--lr 5e-4] [--clients 4] [--idle-s 30]

The defaults are the acceptance run (about 20 minutes on 2 CPU cores); `--steps 40 --train-images 64
--heldout-images 32 --eval-images 4` is a quick smoke run of the same loop.

The policy's job is GRPO on captions with the caption reward of bench/training_methods.py (name the
objects' colours, say the right colour-shape pairs, in fewer words) and the DEFAULT release gate:
the version is promoted only when the held-out reward rose and no guarded metric (skill metrics,
held-out query exact match) dropped by more than 2 points. A version the gate refuses ends the run
with the gate's reasons, after printing its figures. The ratings trigger the job (what decides *when*
to train); they rate query answers, which a caption job does not train on (a job trains the skills
its held-out evaluation measures), so its rows are the synthetic caption train split (the ratings
carry no caption ground truth).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
from benchlib import pct  # noqa: E402

from dreamforge.events import REWARD_SCORED, new_meta  # noqa: E402
from dreamforge.grpcio import channel  # noqa: E402
from dreamforge.image_store import ImageStore  # noqa: E402
from dreamforge.images import encode_png  # noqa: E402
from dreamforge.infra import ensure_nats, free_port  # noqa: E402
from dreamforge.runtime import in_process  # noqa: E402
from dreamforge.settings import PlatformSettings  # noqa: E402
from dreamforge.v1 import (  # noqa: E402
    common_pb2,
    events_pb2,
    inference_pb2,
    inference_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    trainer_pb2,
    trainer_pb2_grpc,
)
from dreamforge.world import get_sample  # noqa: E402
from services.inference.main import build as build_inference  # noqa: E402
from services.inference.settings import InferenceSettings  # noqa: E402
from services.registry.main import build as build_registry  # noqa: E402
from services.trainer.main import build as build_trainer  # noqa: E402
from services.trainer.settings import DEFAULT_MODEL_DIR, TrainerSettings  # noqa: E402

TENANT = "t_bench"
CALLER = common_pb2.Caller(tenant_id=TENANT, key_id="bench", scopes=["app", "ml"])
#: The load comes from another tenant (its `default` is the built-in default model): the question is
#: whether the inference service keeps answering while the trainer trains, not which model answers.
LOAD_CALLER = common_pb2.Caller(tenant_id="t_load", key_id="load", scopes=["app"])
#: The caption reward (bench/training_methods.py --reward caption).
REWARD = {"terms": [{"metric": "colour_mention", "weight": 1.0},
                    {"metric": "caption_content_accuracy", "weight": 1.0},
                    {"metric": "output_length", "weight": 1.0, "direction": "minimize",
                     "params": {"max_words": 30}}]}


async def load(stub: Any, clients: int, stop: asyncio.Event, reference: str = "default") -> dict[str, Any]:
    """Closed-loop clients until `stop`: latencies of answered calls, and failures."""
    samples = [get_sample("test", i, 96) for i in range(16)]
    pngs = [(encode_png(s.image), s.questions()[0].question) for s in samples]
    times: list[float] = []
    errors: list[str] = []

    async def client(c: int) -> None:
        i = c
        while not stop.is_set():
            png, question = pngs[i % len(pngs)]
            start = time.perf_counter()
            try:
                await stub.Query(inference_pb2.QueryRequest(
                    caller=LOAD_CALLER, request_id=f"load-{c}-{i}", model=inference_pb2.Target(reference=reference),
                    image=inference_pb2.Image(data=png), question=question), timeout=60)
                times.append(time.perf_counter() - start)
            except Exception as exc:  # every failure is counted and reported
                errors.append(type(exc).__name__)
            i += clients

    await asyncio.gather(*(client(c) for c in range(clients)))
    return {"n": len(times), "errors": len(errors), "p50": pct(times, 0.5), "p99": pct(times, 0.99)}


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="df-bench-training-"))
    nats_server = ensure_nats(f"nats://127.0.0.1:{free_port()}", work / "nats")
    url = nats_server.url
    try:
        async with in_process("registry", build_registry, PlatformSettings(home=work, nats_url=url,
                                                                        log_format="text")) as registry:
            target = f"127.0.0.1:{registry.port}"
            inference_settings = InferenceSettings(home=work, nats_url=url, log_format="text", registry_addr=target,
                                                   default_model=DEFAULT_MODEL_DIR, torch_threads=1)
            trainer_settings = TrainerSettings(home=work, nats_url=url, log_format="text", registry_addr=target,
                                               feedback_addr="127.0.0.1:1", job_threads=1,
                                               eval_images=args.eval_images, policy_poll_s=0.5)
            async with in_process("inference", build_inference, inference_settings) as inference, \
                    in_process("trainer", build_trainer, trainer_settings) as trainer:
                await run(args, work, url, target, f"127.0.0.1:{inference.port}", f"127.0.0.1:{trainer.port}")
    finally:
        nats_server.stop()


async def run(args: argparse.Namespace, work: Path, url: str, registry_target: str, inference_target: str,
              trainer_target: str) -> None:
    async with channel(registry_target) as rch, channel(inference_target) as ich, channel(trainer_target) as tch:
        registry = registry_pb2_grpc.RegistryServiceStub(rch)  # type: ignore[no-untyped-call]
        infer = inference_pb2_grpc.InferenceServiceStub(ich)  # type: ignore[no-untyped-call]
        trainer = trainer_pb2_grpc.TrainerServiceStub(tch)  # type: ignore[no-untyped-call]
        model = await registry.CreateModel(registry_pb2.CreateModelRequest(caller=CALLER, name="bench"))
        config = {"steps": args.steps, "prompts_per_step": 4, "num_generations": 8, "learning_rate": args.lr,
                  "beta": 0.04, "temperature": 1.0, "max_completion_length": 64, "skills": ["caption"],
                  "train_images": args.train_images, "heldout_images": args.heldout_images}  # the default gate
        await trainer.PutPolicy(trainer_pb2.PutPolicyRequest(caller=CALLER, policy=trainer_pb2.TrainingPolicy(
            model="bench", enabled=True, every_n_rewards=args.n, min_rewards=args.n, method="grpo",
            reward_function_json=json.dumps(REWARD), config_json=json.dumps(config))))
        stop = asyncio.Event()
        idle_task = asyncio.create_task(load(infer, args.clients, stop))
        await asyncio.sleep(args.idle_s)
        stop.set()
        idle = await idle_task

        store = ImageStore(work / "images")
        nc = await nats.connect(url)
        js = nc.jetstream()
        for i in range(args.n):
            sample = get_sample("test", 100 + i, 96)
            task = sample.questions()[0]
            ref = store.save(TENANT, encode_png(sample.image))
            event = events_pb2.RewardScored(
                meta=new_meta(TENANT, "feedback", f"bench-rw-{i}"), feedback_id=f"fb{i}", model_id=model.id,
                reward=1.0, skill="query", prompt=task.question, image_ref=ref,
                output_json=json.dumps({"answer": task.answer}))
            await js.publish(REWARD_SCORED.subject(TENANT), event.SerializeToString(),
                             headers={"Nats-Msg-Id": event.meta.event_id})
        nth_rating = time.perf_counter()
        await nc.close()

        stop = asyncio.Event()
        busy_task = asyncio.create_task(load(infer, args.clients, stop))
        job = None
        while job is None:
            jobs = (await trainer.ListJobs(trainer_pb2.ListJobsRequest(caller=CALLER))).jobs
            job = jobs[0] if jobs else None
            await asyncio.sleep(0.1)
        started = time.perf_counter()
        while True:
            job = await trainer.GetJob(trainer_pb2.GetJobRequest(caller=CALLER, job_id=job.id))
            if job.status in ("succeeded", "failed", "cancelled"):
                break
            await asyncio.sleep(0.2)
        finished = time.perf_counter()
        stop.set()
        busy = await busy_task
        if job.status != "succeeded":
            raise SystemExit(f"job {job.status}: {job.reason}")
        serving = await first_answer_from(infer, job.result_version) if job.promoted else None
    report(args, job, idle, busy, started - nth_rating, finished - nth_rating,
           None if serving is None else serving - nth_rating)
    if not job.promoted:  # the figures above still stand; the run did not end with the version serving
        raise SystemExit(f"registered v{job.result_version} but the gate refused it: {job.gate_json}")


async def first_answer_from(infer: Any, version: int) -> float:
    """When inference first answers the tenant's `bench` model with `version` (hot-swapped on `model.updated`)."""
    png = encode_png(get_sample("test", 0, 96).image)
    while True:
        reply = await infer.Query(inference_pb2.QueryRequest(
            caller=CALLER, request_id=f"probe-{time.time()}", model=inference_pb2.Target(reference="bench"),
            image=inference_pb2.Image(data=png), question="what colour is the circle?"))
        if reply.version == version:
            return time.perf_counter()
        await asyncio.sleep(0.05)


def report(args: argparse.Namespace, job: Any, idle: dict[str, Any], busy: dict[str, Any], started_s: float,
           finished_s: float, serving_s: float | None) -> None:
    """The run's figures (times after the N-th rating), printed whether or not the gate promoted."""
    steps = list(job.history)
    sps = [p.samples_per_second for p in steps]
    before, after = dict(job.eval_before), dict(job.eval_after)
    print(f"\nonline GRPO on {DEFAULT_MODEL_DIR.name}, {platform.machine()} {os.cpu_count()} CPUs; N={args.n} "
          f"rewards, GRPO on captions, {args.steps} steps x 4 prompts x 8 generations, lr {args.lr:g}, default "
          f"gate (skill metrics on {args.eval_images} test images), worker threads 1, inference threads 1\n")
    print("| phase | seconds after the N-th rating |\n|---|---|")
    print(f"| job started (policy trigger) | {started_s:.1f} |")
    print(f"| job finished (eval, train, eval, registered, gate) | {finished_s:.1f} |")
    if serving_s is not None:
        print(f"| new version serving (inference answered with v{job.result_version}) | {serving_s:.1f} |")
    else:
        print(f"| new version serving | never: v{job.result_version} registered, not promoted |")
    print(f"\nper step: samples/s mean {sum(sps) / len(sps):.2f} -> {32 / (sum(sps) / len(sps)):.2f} s/step "
          f"({len(steps)} steps)")
    print("\n| held-out metric | before | after |\n|---|---|---|")
    for name in sorted(set(before) & set(after)):
        print(f"| {name} | {before[name]:.4f} | {after[name]:.4f} |")
    print(f"\npromoted={job.promoted}; gate {job.gate_json}")
    print(f"\n| serving ({args.clients} clients, Query) | answered | failed | p50 ms | p99 ms |\n|---|---|---|---|---|")
    print(f"| idle ({args.idle_s:.0f} s) | {idle['n']} | {idle['errors']} | {idle['p50']:.0f} | {idle['p99']:.0f} |")
    print(f"| during the job ({finished_s - started_s:.0f} s) | {busy['n']} | {busy['errors']} | {busy['p50']:.0f} | "
          f"{busy['p99']:.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=8, help="ratings that trigger the job (policy every_n_rewards)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--eval-images", type=int, default=200, help="test images of the gate's skill metrics")
    parser.add_argument("--heldout-images", type=int, default=64)
    parser.add_argument("--train-images", type=int, default=1024)
    asyncio.run(main(parser.parse_args()))
