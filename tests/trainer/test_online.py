"""The online trigger and crash safety: rewards arriving on `reward.scored` start a job when the
policy says so; a trainer killed mid-job leaves the job failed, nothing registered, and every
reward still buffered (including those published while it was down)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nats

from dreamforge.events import REWARD_SCORED, new_meta
from dreamforge.grpcio import channel, health_status
from dreamforge.image_store import ImageStore
from dreamforge.images import encode_png
from dreamforge.infra import free_port
from dreamforge.v1 import events_pb2, registry_pb2, registry_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from dreamforge.world import get_sample
from services.registry.main import build as build_registry
from tests.helpers import eventually, platform_settings, running_service
from tests.trainer.conftest import COLOUR_AND_SHORT, TINY, Stack, caller, make_model, needs_model, wait_final

pytestmark = needs_model
ROOT = Path(__file__).resolve().parents[2]


def reward_event(tenant: str, model_id: str, i: int, image_ref: str = "0" * 64) -> events_pb2.RewardScored:
    return events_pb2.RewardScored(
        meta=new_meta(tenant, "feedback", f"{tenant}-rw-{i}"), feedback_id=f"fb{i}", request_id=f"req{i}",
        model_id=model_id, version=0, reward=0.5, skill="query", prompt="what colour is the circle?",
        image_ref=image_ref, output_json='{"answer": "red"}', terms={"colour_mention": 1.0})


async def publish(nats_url: str, events: list[events_pb2.RewardScored]) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for event in events:
        await js.publish(REWARD_SCORED.subject(event.meta.tenant_id), event.SerializeToString(),
                         headers={"Nats-Msg-Id": event.meta.event_id})
    await nc.close()


async def test_policy_starts_a_job_after_n_rewards(
        stack: Stack, trainer_stub: trainer_pb2_grpc.TrainerServiceStub,
        registry_stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    model = await make_model(registry_stub, "t_online", "online")
    policy = trainer_pb2.TrainingPolicy(
        model="online", enabled=True, every_n_rewards=4, min_rewards=4, method="grpo",
        reward_function_json=json.dumps(COLOUR_AND_SHORT),
        config_json=json.dumps({**TINY, "gate": {"min_gain": -1.0, "max_skill_drop": 1.0}}))
    await trainer_stub.PutPolicy(trainer_pb2.PutPolicyRequest(caller=caller("t_online"), policy=policy))
    # as served: inference keeps the image in the platform's image store; the event names it
    store = ImageStore(stack.trainer_runtime.settings.home / "images")
    ref = store.save("t_online", encode_png(get_sample("test", 7, 96).image))
    await publish(stack.nats_url, [reward_event("t_online", model.id, i, ref) for i in range(3)])
    await eventually(lambda: stack.trainer.pending("t_online", model.id), timeout_s=10)
    await asyncio.sleep(1.0)  # three rewards: below the policy's four, nothing starts
    listed = await trainer_stub.ListJobs(trainer_pb2.ListJobsRequest(caller=caller("t_online")))
    assert list(listed.jobs) == []
    await publish(stack.nats_url, [reward_event("t_online", model.id, 3), reward_event("t_online", model.id, 3)])

    async def started() -> trainer_pb2.TrainingJob | None:
        jobs = (await trainer_stub.ListJobs(trainer_pb2.ListJobsRequest(caller=caller("t_online")))).jobs
        return jobs[0] if jobs else None

    job = await eventually(started, timeout_s=20, interval_s=0.2)
    assert job.trigger == "policy" and job.method == "grpo"
    done = await wait_final(trainer_stub, "t_online", job.id)
    assert done.status == "succeeded", done.reason
    assert done.promoted and done.result_version == 1
    assert await stack.trainer.pending("t_online", model.id) == 0  # the four (deduplicated) rewards were used
    data = stack.trainer_runtime.settings.jobs_dir / job.id / "data.jsonl"
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert sum(r.get("image_ref") == ref for r in rows) == 3  # the served image's events train the policy
    jobs = (await trainer_stub.ListJobs(trainer_pb2.ListJobsRequest(caller=caller("t_online")))).jobs
    assert len(jobs) == 1  # no second job without new rewards


def start_trainer(home: Path, nats_url: str, registry: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DREAMFORGE_HOME": str(home), "DREAMFORGE_NATS_URL": nats_url,
           "DREAMFORGE_REGISTRY_ADDR": registry, "DREAMFORGE_TRAINER_PORT": str(port),
           "DREAMFORGE_EVAL_IMAGES": "1", "DREAMFORGE_JOB_THREADS": "1", "DREAMFORGE_LOG_FORMAT": "text",
           "DREAMFORGE_FEEDBACK_ADDR": "127.0.0.1:1"}
    home.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "services.trainer"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=(home / "trainer.log").open("ab"))


async def test_killing_the_trainer_mid_job_fails_the_job_and_loses_no_reward(
        nats_url: str, tmp_path: Path) -> None:
    async with running_service("registry", build_registry, platform_settings(tmp_path / "registry", nats_url)) \
            as registry:
        target, port = f"127.0.0.1:{registry.port}", free_port()
        async with channel(target) as ch:
            reg = registry_pb2_grpc.RegistryServiceStub(ch)  # type: ignore[no-untyped-call]
            model = await reg.CreateModel(registry_pb2.CreateModelRequest(caller=caller("t_kill"), name="crash"))
        first = start_trainer(tmp_path / "trainer", nats_url, target, port)
        second = None
        try:
            await eventually(lambda: _serving(port), timeout_s=60, interval_s=0.2)
            async with channel(f"127.0.0.1:{port}") as ch:
                stub = trainer_pb2_grpc.TrainerServiceStub(ch)  # type: ignore[no-untyped-call]
                job = await stub.CreateJob(trainer_pb2.CreateJobRequest(
                    caller=caller("t_kill"), model="crash", method="sft",
                    config_json=json.dumps({**TINY, "steps": 500})))
                await publish(nats_url, [reward_event("t_kill", model.id, i) for i in range(3)])

                async def stepping() -> trainer_pb2.TrainingJob | None:
                    got = await stub.GetJob(trainer_pb2.GetJobRequest(caller=caller("t_kill"), job_id=job.id))
                    return got if got.history else None

                running = await eventually(stepping, timeout_s=90, interval_s=0.2)
                assert running.status == "running"
            assert _workers_of(job.id)  # the job's worker process is training
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            await publish(nats_url, [reward_event("t_kill", model.id, i) for i in range(3, 6)])
            second = start_trainer(tmp_path / "trainer", nats_url, target, port)
            await eventually(lambda: _serving(port), timeout_s=60, interval_s=0.2)
            async with channel(f"127.0.0.1:{port}") as ch:
                stub = trainer_pb2_grpc.TrainerServiceStub(ch)  # type: ignore[no-untyped-call]
                done = await stub.GetJob(trainer_pb2.GetJobRequest(caller=caller("t_kill"), job_id=job.id))
                assert done.status == "failed" and "trainer stopped" in done.reason
                policy = await eventually(lambda: _pending(stub, 6), timeout_s=20, interval_s=0.2)
                assert policy.pending_rewards == 6
            async with channel(target) as ch:
                reg = registry_pb2_grpc.RegistryServiceStub(ch)  # type: ignore[no-untyped-call]
                versions = await reg.ListVersions(registry_pb2.ListVersionsRequest(caller=caller("t_kill"),
                                                                                   model=model.id))
                assert list(versions.versions) == []
            assert not (tmp_path / "trainer" / "trainer" / "jobs" / job.id / "adapter").exists()
            await eventually(lambda: not _workers_of(job.id), timeout_s=10)  # the orphaned worker was stopped
        finally:
            for proc in (first, second):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        proc.wait(30)
                    if proc.poll() is None:
                        proc.kill()


def _workers_of(job_id: str) -> list[int]:
    """Live worker processes of a job (by command line), zombies excluded."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        if b"services.trainer.worker" in cmd and job_id.encode() in cmd and state != "Z":
            found.append(int(proc.name))
    return found


async def _serving(port: int) -> bool:
    return await health_status(f"127.0.0.1:{port}") == "SERVING"


async def _pending(stub: trainer_pb2_grpc.TrainerServiceStub, n: int) -> trainer_pb2.TrainingPolicy | None:
    policy = await stub.GetPolicy(trainer_pb2.GetPolicyRequest(caller=caller("t_kill"), model="crash"))
    return policy if policy.pending_rewards == n else None
