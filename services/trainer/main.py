"""Wires the trainer: the reward buffer and its durable `reward.scored` consumer, the job store
and outbox relay, the job runner (worker processes), the online trigger, the Moondream-style
tuning sessions, and the gRPC APIs (TrainerService, TuningService).

On start (after the database and NATS answer): jobs a previous process left running are marked
failed, then the outbox relay, the runner and the trigger start. On SIGTERM they stop in reverse:
running workers are stopped and their jobs marked failed with their rewards given back.
"""

from __future__ import annotations

from dataclasses import dataclass

from dreamforge.events import REWARD_SCORED
from dreamforge.grpcio import channel
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import feedback_pb2_grpc, registry_pb2_grpc, trainer_pb2_grpc
from services.trainer.backends import Registry, RewardFunctions
from services.trainer.buffer import RewardBuffer
from services.trainer.grpc_api import TrainerServicer, TuningServicer
from services.trainer.jobs import JobService
from services.trainer.policy import Policies
from services.trainer.runner import JobRunner
from services.trainer.settings import TrainerSettings
from services.trainer.store import JobStore
from services.trainer.tuning import Tuning


@dataclass
class Trainer:
    """What `build` returns (`runtime.state`)."""

    buffer: RewardBuffer
    store: JobStore
    runner: JobRunner
    jobs: JobService
    policies: Policies
    tuning: Tuning

    async def pending(self, tenant_id: str, model_id: str) -> int:
        return await self.buffer.pending(tenant_id, model_id)


async def build(runtime: ServiceRuntime) -> Trainer:
    settings = runtime.settings_as(TrainerSettings)
    buffer = RewardBuffer(runtime.db)
    store = JobStore(runtime.db)
    runtime.migrations.extend([*buffer.migrations, *store.migrations])
    registry_channel = channel(settings.grpc_target("registry"))
    feedback_channel = channel(settings.grpc_target("feedback"))
    registry = Registry(registry_pb2_grpc.RegistryServiceStub(registry_channel),  # type: ignore[no-untyped-call]
                        settings.registry_timeout_s)
    rewards = RewardFunctions(feedback_pb2_grpc.FeedbackServiceStub(feedback_channel),  # type: ignore[no-untyped-call]
                              settings.feedback_timeout_s)
    runner = JobRunner(settings, store, buffer, registry)
    jobs = JobService(store, runner, registry, rewards)
    policies = Policies(store, buffer, jobs, settings.policy_poll_s)
    tuning = Tuning(runtime.db, registry, settings)
    runtime.migrations.extend(tuning.migrations)

    async def on_reward(event, delivery):  # type: ignore[no-untyped-def]
        if await buffer.add(event, delivery):
            policies.wake()

    runtime.bus.subscribe(REWARD_SCORED, on_reward, durable="trainer-rewards")
    runtime.add_servicer(trainer_pb2_grpc.add_TrainerServiceServicer_to_server, TrainerServicer(jobs, policies),
                         "dreamforge.v1.TrainerService")
    runtime.add_servicer(trainer_pb2_grpc.add_TuningServiceServicer_to_server, TuningServicer(tuning),
                         "dreamforge.v1.TuningService")

    async def start() -> None:
        await runner.recover()
        store.outbox.start_relay(runtime.bus)
        runner.start()
        policies.start()
        tuning.start()

    async def stop() -> None:
        await policies.stop()
        await runner.stop()
        await tuning.close()
        await store.outbox.stop(runtime.bus)
        await registry_channel.close()
        await feedback_channel.close()

    runtime.on_start(start)
    runtime.on_stop(stop)
    return Trainer(buffer, store, runner, jobs, policies, tuning)
