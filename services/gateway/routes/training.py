"""Training routes (scope `ml`): start, watch and cancel jobs; the online trigger's policy.

`POST /v1/training/jobs` queues a job (GRPO, DPO or SFT on a LoRA adapter of a registry model);
`GET /v1/training/jobs[/{id}]` shows status, queue position, evaluations, gate verdict and the
per-step history; `WS /v1/training/jobs/{id}/stream` relays its `training.progress` events live
and closes after `training.finished` / `training.failed`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, Literal

import grpc
import msgspec
from litestar import Controller, WebSocket, get, post, put, websocket
from litestar.exceptions import WebSocketDisconnect, WebSocketException
from litestar.params import Parameter

from services.gateway.auth import requires
from services.gateway.event_relay import EventRelay
from services.gateway.keys import Principal
from services.gateway.routes.admin import SECURITY
from services.gateway.schemas import training as s
from services.gateway.trainer_client import TrainerClient, job_out

ML = [requires("ml")]
JobId = Annotated[str, Parameter(min_length=1, max_length=100, description="Training job id (job_...)")]
PageSize = Annotated[int, Parameter(ge=1, le=200, description="Items per page (1-200)")]
PageToken = Annotated[str, Parameter(max_length=500, description="`next_page_token` of the previous page")]
IdempotencyKey = Annotated[str | None, Parameter(
    header="Idempotency-Key", max_length=200, description="Retries with the same key queue nothing twice")]
STREAM_EVENTS = ["training.progress", "training.finished", "training.failed"]
FINAL = ("succeeded", "failed", "cancelled")


class TrainingController(Controller):
    path = "/v1/training"
    tags = ["training"]
    security = SECURITY
    guards = ML

    @post("/jobs", operation_id="createTrainingJob", summary="Queue a training job (grpo, dpo or sft on LoRA)")
    async def create_job(self, trainer: TrainerClient, principal: Principal, data: s.CreateJob,
                         idempotency_key: IdempotencyKey = None) -> s.JobOut:
        return await trainer.create_job(principal, data, idempotency_key or "")

    @get("/jobs", operation_id="listTrainingJobs", summary="List the tenant's training jobs, newest first")
    async def list_jobs(self, trainer: TrainerClient, principal: Principal, page_size: PageSize = 50,
                        page_token: PageToken = "",
                        model: Annotated[str, Parameter(max_length=200, description="Only this model's jobs")] = "",
                        status: Annotated[Literal["", "queued", "running", "succeeded", "failed", "cancelled"],
                                          Parameter(description="Only jobs in this status")] = "",
                        ) -> s.JobList:
        return await trainer.list_jobs(principal, model, status, page_size, page_token)

    @get("/jobs/{job_id:str}", operation_id="getTrainingJob",
         summary="A job's status, evaluations, gate verdict and per-step history")
    async def get_job(self, trainer: TrainerClient, principal: Principal, job_id: JobId) -> s.JobOut:
        return await trainer.get_job(principal, job_id)

    @post("/jobs/{job_id:str}/cancel", operation_id="cancelTrainingJob", status_code=200,
          summary="Cancel a queued or running job (nothing is registered)")
    async def cancel_job(self, trainer: TrainerClient, principal: Principal, job_id: JobId) -> s.JobOut:
        return await trainer.cancel_job(principal, job_id)

    @get("/policy", operation_id="getTrainingPolicy", summary="The online trigger's policy for a model")
    async def get_policy(self, trainer: TrainerClient, principal: Principal,
                         model: Annotated[str, Parameter(min_length=1, max_length=200,
                                                         description="Registry model name or id")]) -> s.PolicyOut:
        return await trainer.get_policy(principal, model)

    @put("/policy", operation_id="putTrainingPolicy",
         summary="Set when new rewards start a job (every N rewards / T minutes, with a minimum)")
    async def put_policy(self, trainer: TrainerClient, principal: Principal, data: s.Policy) -> s.PolicyOut:
        return await trainer.put_policy(principal, data)


@websocket("/v1/training/jobs/{job_id:str}/stream", name="training_stream", guards=ML)
async def training_stream(socket: WebSocket[Any, Any, Any], trainer: TrainerClient, relay: EventRelay,
                          principal: Principal, job_id: str) -> None:
    """First frame `{"type": "job", "job": {...}}` (with the history so far), then one frame per
    event of this job; closes after the job ends."""
    try:
        job = await trainer.get_job_pb(principal, job_id)
    except grpc.aio.AioRpcError as exc:
        code = 4404 if exc.code() == grpc.StatusCode.NOT_FOUND else 4503
        raise WebSocketException(detail=exc.details() or "job unavailable", code=code) from None
    await socket.accept()
    async with relay.subscribe(principal.tenant_id, STREAM_EVENTS) as feed:
        job = await trainer.get_job_pb(principal, job_id)  # after subscribing: nothing falls in between
        await socket.send_json({"type": "job", "job": _jsonable(job)})
        if job.status in FINAL:
            await socket.close()
            return
        pump = asyncio.create_task(_pump(socket, feed, job_id))
        watch = asyncio.create_task(_until_disconnect(socket))
        try:
            await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (pump, watch):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            await socket.close()


def _jsonable(job: Any) -> dict[str, Any]:
    return msgspec.to_builtins(job_out(job))  # type: ignore[no-any-return]


async def _pump(socket: WebSocket[Any, Any, Any], feed: Any, job_id: str) -> None:
    while True:
        frame = await feed.next()
        if frame["event"].get("job_id") != job_id:
            continue
        await socket.send_json(frame)
        if frame["type"] != "training.progress":
            return


async def _until_disconnect(socket: WebSocket[Any, Any, Any]) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            if (await socket.receive())["type"] == "websocket.disconnect":
                return

