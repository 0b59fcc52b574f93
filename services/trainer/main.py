"""Wires the trainer service: the reward buffer, the `reward.scored` consumer, gRPC API."""

from __future__ import annotations

from dreamforge.events import REWARD_SCORED
from dreamforge.grpcio import pending
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import trainer_pb2_grpc
from services.trainer.buffer import RewardBuffer


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    """Jobs and policies answer UNIMPLEMENTED until the trainer issue lands."""

    CreateJob = pending("training jobs")
    GetJob = pending("training jobs")
    ListJobs = pending("training jobs")
    CancelJob = pending("training jobs")
    GetPolicy = pending("the online training policy")
    PutPolicy = pending("the online training policy")


async def build(runtime: ServiceRuntime) -> RewardBuffer:
    buffer = RewardBuffer(runtime.db)
    runtime.migrations.extend(buffer.migrations)

    async def on_reward(event, delivery):  # type: ignore[no-untyped-def]
        await buffer.add(event, delivery)

    runtime.bus.subscribe(REWARD_SCORED, on_reward, durable="trainer-rewards")
    runtime.add_servicer(trainer_pb2_grpc.add_TrainerServiceServicer_to_server, TrainerServicer(),
                         "dreamforge.v1.TrainerService")
    return buffer
