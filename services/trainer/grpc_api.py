"""`dreamforge.v1.TrainerService` and `TuningService` over gRPC: hand requests to the job service,
the policies and the tuning sessions; `grpc_errors` turns their ServiceErrors into status codes
with the message intact."""

from __future__ import annotations

import json
from typing import Any, TypeAlias

import grpc

from dreamforge.grpcio import InvalidArgument, grpc_errors
from dreamforge.v1 import trainer_pb2, trainer_pb2_grpc
from services.trainer.jobs import JobService
from services.trainer.policy import Policies
from services.trainer.tuning import Tuning

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(self, jobs: JobService, policies: Policies) -> None:
        self.jobs = jobs
        self.policies = policies

    @grpc_errors
    async def CreateJob(self, request: trainer_pb2.CreateJobRequest, context: Context) -> trainer_pb2.TrainingJob:
        return await self.jobs.create(request)

    @grpc_errors
    async def GetJob(self, request: trainer_pb2.GetJobRequest, context: Context) -> trainer_pb2.TrainingJob:
        return await self.jobs.get(request)

    @grpc_errors
    async def ListJobs(self, request: trainer_pb2.ListJobsRequest, context: Context) -> trainer_pb2.ListJobsResponse:
        return await self.jobs.list(request)

    @grpc_errors
    async def CancelJob(self, request: trainer_pb2.GetJobRequest, context: Context) -> trainer_pb2.TrainingJob:
        return await self.jobs.cancel(request)

    @grpc_errors
    async def GetPolicy(self, request: trainer_pb2.GetPolicyRequest, context: Context) -> trainer_pb2.TrainingPolicy:
        return await self.policies.get(request.caller, request.model)

    @grpc_errors
    async def PutPolicy(self, request: trainer_pb2.PutPolicyRequest, context: Context) -> trainer_pb2.TrainingPolicy:
        return await self.policies.put(request.caller, request.policy)


def _body(request: trainer_pb2.TuningCall) -> dict[str, Any]:
    try:
        body = json.loads(request.body_json or "{}")
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"body is not valid JSON: {exc.msg}") from None
    if not isinstance(body, dict):
        raise InvalidArgument("body must be a JSON object")
    return body


def _reply(value: dict[str, Any]) -> trainer_pb2.TuningReply:
    return trainer_pb2.TuningReply(body_json=json.dumps(value))


class TuningServicer(trainer_pb2_grpc.TuningServiceServicer):
    def __init__(self, tuning: Tuning) -> None:
        self.tuning = tuning

    @grpc_errors
    async def CreateFinetune(self, request: trainer_pb2.CreateFinetuneRequest, context: Context
                             ) -> trainer_pb2.Finetune:
        return await self.tuning.create(request.caller, request.name, request.rank)

    @grpc_errors
    async def GetFinetune(self, request: trainer_pb2.FinetuneRequest, context: Context) -> trainer_pb2.Finetune:
        return await self.tuning.get(request.caller, request.finetune_id)

    @grpc_errors
    async def ListFinetunes(self, request: trainer_pb2.ListFinetunesRequest, context: Context
                            ) -> trainer_pb2.ListFinetunesResponse:
        return trainer_pb2.ListFinetunesResponse(finetunes=await self.tuning.list_finetunes(request.caller))

    @grpc_errors
    async def DeleteFinetune(self, request: trainer_pb2.FinetuneRequest, context: Context) -> trainer_pb2.Finetune:
        return await self.tuning.delete(request.caller, request.finetune_id)

    @grpc_errors
    async def Rollouts(self, request: trainer_pb2.TuningCall, context: Context) -> trainer_pb2.TuningReply:
        return _reply(await self.tuning.rollouts(request.caller, request.finetune_id, _body(request)))

    @grpc_errors
    async def TrainStep(self, request: trainer_pb2.TuningCall, context: Context) -> trainer_pb2.TuningReply:
        return _reply(await self.tuning.train_step(request.caller, request.finetune_id, _body(request)))

    @grpc_errors
    async def LogMetrics(self, request: trainer_pb2.TuningCall, context: Context) -> trainer_pb2.TuningReply:
        return _reply(await self.tuning.log_metrics(request.caller, request.finetune_id, _body(request)))

    @grpc_errors
    async def ListCheckpoints(self, request: trainer_pb2.FinetuneRequest, context: Context
                              ) -> trainer_pb2.ListCheckpointsResponse:
        return trainer_pb2.ListCheckpointsResponse(
            checkpoints=await self.tuning.checkpoints(request.caller, request.finetune_id))

    @grpc_errors
    async def SaveCheckpoint(self, request: trainer_pb2.FinetuneRequest, context: Context) -> trainer_pb2.Checkpoint:
        return await self.tuning.save(request.caller, request.finetune_id)

    @grpc_errors
    async def DeleteCheckpoint(self, request: trainer_pb2.CheckpointRequest, context: Context
                               ) -> trainer_pb2.Checkpoint:
        return await self.tuning.delete_checkpoint(request.caller, request.finetune_id, request.step)
