"""The trainer's use cases behind gRPC: create (validated), get, list, cancel jobs; read and write
the online-trigger policy. Validation errors name the field to fix."""

from __future__ import annotations

import json

from dreamforge.grpcio import InvalidArgument
from dreamforge.v1 import common_pb2, trainer_pb2
from services.trainer.backends import Registry, RewardFunctions
from services.trainer.config import METHODS, parse_config
from services.trainer.runner import JobRunner
from services.trainer.store import JobStore

MAX_TEXT = 100_000


def check_caller(caller: common_pb2.Caller) -> str:
    if not caller.tenant_id:
        raise InvalidArgument("caller.tenant_id is required: every trainer call is scoped to a tenant")
    return caller.tenant_id


class JobService:
    def __init__(self, store: JobStore, runner: JobRunner, registry: Registry, rewards: RewardFunctions) -> None:
        self.store = store
        self.runner = runner
        self.registry = registry
        self.rewards = rewards

    async def reward_function(self, caller: common_pb2.Caller, method: str, fn_id: str, version: int,
                              inline: str) -> tuple[str, int, str]:
        """(id, version, definition JSON) a job will use; grpo must have one."""
        if len(inline) > MAX_TEXT:
            raise InvalidArgument(f"reward_function is longer than {MAX_TEXT} characters")
        if inline.strip():
            return "", 0, json.dumps(self.rewards.parse_inline(inline))
        if fn_id:
            definition, got = await self.rewards.fetch(caller, fn_id, version)
            return fn_id, got, json.dumps(definition)
        if method == "grpo":
            raise InvalidArgument("reward_function is required for grpo: name a saved reward function "
                                  "(reward_function_id) or send its definition inline")
        return "", 0, ""

    async def create(self, request: trainer_pb2.CreateJobRequest, trigger: str = "manual") -> trainer_pb2.TrainingJob:
        tenant = check_caller(request.caller)
        if not request.model.strip():
            raise InvalidArgument("model is required: the registry model (name or id) to train")
        if request.method not in METHODS:
            raise InvalidArgument(f"method {request.method!r} is invalid: use one of {', '.join(METHODS)}")
        if request.base_version < 0:
            raise InvalidArgument("base_version must be >= 0 (0 = the production version)")
        cfg = parse_config(request.method, request.config_json or "{}")
        fn_id, fn_version, definition = await self.reward_function(
            request.caller, request.method, request.reward_function_id, request.reward_function_version,
            request.reward_function_json)
        base = await self.registry.base(request.caller, request.model.strip(), request.base_version)
        job_id = await self.store.create_job(tenant, {
            "model": base.model_name, "model_id": base.model_id, "base_version": base.version,
            "method": request.method, "config_json": cfg.resolved(request.method).to_json(),
            "reward_function_id": fn_id, "reward_function_version": fn_version,
            "reward_function_json": definition, "trigger": trigger,
        }, request.idempotency_key[:200])
        self.runner.wake()
        return await self.store.get_job(tenant, job_id)

    async def get(self, request: trainer_pb2.GetJobRequest) -> trainer_pb2.TrainingJob:
        return await self.store.get_job(check_caller(request.caller), request.job_id)

    async def list(self, request: trainer_pb2.ListJobsRequest) -> trainer_pb2.ListJobsResponse:
        tenant = check_caller(request.caller)
        model_id = ""
        if request.model:
            model_id = (await self.registry.base(request.caller, request.model, 0)).model_id
        jobs, token = await self.store.list_jobs(tenant, model_id=model_id, status=request.status,
                                                 page_size=request.page.page_size, page_token=request.page.page_token)
        return trainer_pb2.ListJobsResponse(jobs=jobs, page=common_pb2.PageInfo(next_page_token=token))

    async def cancel(self, request: trainer_pb2.GetJobRequest) -> trainer_pb2.TrainingJob:
        tenant = check_caller(request.caller)
        row = await self.store.cancel_queued(tenant, request.job_id)
        if row.status == "running":
            await self.runner.cancel(row.id)
        return await self.store.get_job(tenant, request.job_id)
