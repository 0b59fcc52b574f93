"""The training routes' view of the trainer service: JSON in, gRPC with the caller, JSON out.

gRPC errors propagate and `errors.py` turns them into HTTP statuses with their messages.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from dreamforge.grpcio import ServiceError
from dreamforge.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc
from services.gateway.auth import to_caller
from services.gateway.keys import Principal
from services.gateway.schemas import training as s


def _time(ts: Timestamp) -> datetime | None:
    return ts.ToDatetime(tzinfo=UTC) if ts.seconds or ts.nanos else None


def _object(text: str) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def _reward_ref(value: str | dict[str, Any] | None) -> tuple[str, str]:
    """(id, inline JSON) from the body's `reward_function`."""
    if isinstance(value, dict):
        return "", json.dumps(value)
    return (value or "").strip(), ""


def job_out(j: trainer_pb2.TrainingJob) -> s.JobOut:
    return s.JobOut(
        id=j.id, model=j.model, base_version=j.base_version, method=j.method, status=j.status, reason=j.reason,
        trigger=j.trigger, reward_function_id=j.reward_function_id, reward_function_version=j.reward_function_version,
        reward_function=_object(j.reward_function_json), config=_object(j.config_json), result_version=j.result_version,
        promoted=j.promoted, eval_before=dict(j.eval_before), eval_after=dict(j.eval_after), gate=_object(j.gate_json),
        queue_position=j.queue_position, created_at=_time(j.created_at), updated_at=_time(j.updated_at),
        history=[s.ProgressOut(step=p.step, total_steps=p.total_steps, loss=p.loss, reward_mean=p.reward_mean,
                               reward_std=p.reward_std, kl=p.kl, learning_rate=p.learning_rate,
                               samples_per_second=p.samples_per_second, eta_seconds=p.eta_seconds)
                 for p in j.history])


def policy_out(p: trainer_pb2.TrainingPolicy) -> s.PolicyOut:
    return s.PolicyOut(
        model=p.model, enabled=p.enabled, every_n_rewards=p.every_n_rewards, every_minutes=p.every_minutes,
        min_rewards=p.min_rewards, method=p.method, reward_function_id=p.reward_function_id,
        reward_function_version=p.reward_function_version, reward_function=_object(p.reward_function_json),
        config=_object(p.config_json), pending_rewards=p.pending_rewards,
        last_triggered_at=_time(p.last_triggered_at))


class TrainerUnavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class TrainerClient:
    def __init__(self, stub: trainer_pb2_grpc.TrainerServiceStub | None, timeout_s: float = 30.0) -> None:
        self._stub = stub
        self.timeout_s = timeout_s

    @property
    def stub(self) -> trainer_pb2_grpc.TrainerServiceStub:
        if self._stub is None:
            raise TrainerUnavailable("the trainer service is not configured on this gateway")
        return self._stub

    async def create_job(self, who: Principal, data: s.CreateJob, idempotency_key: str) -> s.JobOut:
        fn_id, inline = _reward_ref(data.reward_function)
        reply = await self.stub.CreateJob(trainer_pb2.CreateJobRequest(
            caller=to_caller(who), model=data.model, base_version=data.base_version, method=data.method,
            reward_function_id=fn_id, reward_function_version=data.reward_function_version,
            reward_function_json=inline, config_json=json.dumps(data.config), idempotency_key=idempotency_key),
            timeout=self.timeout_s)
        return job_out(reply)

    async def get_job(self, who: Principal, job_id: str) -> s.JobOut:
        return job_out(await self.stub.GetJob(trainer_pb2.GetJobRequest(caller=to_caller(who), job_id=job_id),
                                              timeout=self.timeout_s))

    async def get_job_pb(self, who: Principal, job_id: str) -> trainer_pb2.TrainingJob:
        reply: trainer_pb2.TrainingJob = await self.stub.GetJob(
            trainer_pb2.GetJobRequest(caller=to_caller(who), job_id=job_id), timeout=self.timeout_s)
        return reply

    async def list_jobs(self, who: Principal, model: str, status: str, page_size: int, page_token: str) -> s.JobList:
        reply = await self.stub.ListJobs(trainer_pb2.ListJobsRequest(
            caller=to_caller(who), model=model, status=status,
            page=common_pb2.PageRequest(page_size=page_size, page_token=page_token)), timeout=self.timeout_s)
        return s.JobList([job_out(j) for j in reply.jobs], reply.page.next_page_token)

    async def cancel_job(self, who: Principal, job_id: str) -> s.JobOut:
        return job_out(await self.stub.CancelJob(trainer_pb2.GetJobRequest(caller=to_caller(who), job_id=job_id),
                                                 timeout=self.timeout_s))

    async def get_policy(self, who: Principal, model: str) -> s.PolicyOut:
        return policy_out(await self.stub.GetPolicy(trainer_pb2.GetPolicyRequest(caller=to_caller(who), model=model),
                                                    timeout=self.timeout_s))

    async def put_policy(self, who: Principal, data: s.Policy) -> s.PolicyOut:
        fn_id, inline = _reward_ref(data.reward_function)
        policy = trainer_pb2.TrainingPolicy(
            model=data.model, enabled=data.enabled, every_n_rewards=data.every_n_rewards,
            every_minutes=data.every_minutes, min_rewards=data.min_rewards, method=data.method,
            reward_function_id=fn_id, reward_function_version=data.reward_function_version,
            reward_function_json=inline, config_json=json.dumps(data.config))
        return policy_out(await self.stub.PutPolicy(trainer_pb2.PutPolicyRequest(caller=to_caller(who), policy=policy),
                                                    timeout=self.timeout_s))
