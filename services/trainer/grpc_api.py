"""`dreamforge.v1.TrainerService` over gRPC: hands requests to the job service and the policies;
`grpc_errors` turns their ServiceErrors into status codes with the message intact."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from dreamforge.grpcio import grpc_errors
from dreamforge.v1 import trainer_pb2, trainer_pb2_grpc
from services.trainer.jobs import JobService
from services.trainer.policy import Policies

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
