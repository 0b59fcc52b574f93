"""Moondream-compatible tuning routes (scope `ml`; `X-Moondream-Auth` works): the API the
official client's `moondream.ft(...)` drives, served by the trainer's TuningService.

Create/get/delete finetunes (`name`, `rank`), `POST /rollouts` (n sampled answers, with rewards
when `ground_truth` is given), `POST /train_step` (RL and SFT groups), metrics, and checkpoints
(list, save, delete). A saved checkpoint is callable by the skills endpoints as
`<base>/<finetune_id>@<step>` — the id the client's `Finetune.model(step)` forms.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import grpc
from litestar import Controller, delete, get, post
from litestar.params import Parameter

from dreamforge.grpcio import ServiceError
from dreamforge.v1 import trainer_pb2, trainer_pb2_grpc
from services.gateway.auth import requires, to_caller
from services.gateway.keys import Principal
from services.gateway.routes.admin import SECURITY
from services.gateway.schemas import training as s

FinetuneId = Annotated[str, Parameter(min_length=1, max_length=100, description="The finetune's id (ft-...)")]


class TuningUnavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class TuningClient:
    def __init__(self, stub: trainer_pb2_grpc.TuningServiceStub | None, timeout_s: float) -> None:
        self._stub = stub
        self.timeout_s = timeout_s

    @property
    def stub(self) -> trainer_pb2_grpc.TuningServiceStub:
        if self._stub is None:
            raise TuningUnavailable("the trainer service is not configured on this gateway")
        return self._stub

    async def call(self, method: str, request: Any, timeout_s: float | None = None) -> Any:
        return await getattr(self.stub, method)(request, timeout=timeout_s or self.timeout_s)

    async def json_call(self, method: str, who: Principal, finetune_id: str, body: dict[str, Any]) -> Any:
        reply = await self.call(method, trainer_pb2.TuningCall(caller=to_caller(who), finetune_id=finetune_id,
                                                               body_json=json.dumps(body)), timeout_s=900.0)
        return json.loads(reply.body_json)


def _ms(ts: Any) -> int:
    return int(ts.seconds * 1000 + ts.nanos // 1_000_000)


def finetune_out(f: trainer_pb2.Finetune) -> s.FinetuneOut:
    return s.FinetuneOut(finetune_id=f.finetune_id, name=f.name, rank=f.rank, step=f.step,
                         created_at_ms=_ms(f.created_at), updated_at_ms=_ms(f.updated_at))


def checkpoint_out(c: trainer_pb2.Checkpoint) -> s.CheckpointOut:
    created = _ms(c.created_at)
    return s.CheckpointOut(checkpoint_id=c.checkpoint_id, finetune_id=c.finetune_id, step=c.step, version=c.version,
                           model=f"{c.finetune_id}@{c.step}", expires_at_ms=None, created_at_ms=created,
                           updated_at_ms=created)


class TuningController(Controller):
    path = "/v1/tuning"
    tags = ["tuning"]
    security = SECURITY
    guards = [requires("ml")]

    @post("/finetunes", operation_id="createFinetune", summary="Create a finetune (a LoRA adapter of this rank)")
    async def create(self, tuning: TuningClient, principal: Principal, data: s.CreateFinetune) -> s.FinetuneOut:
        return finetune_out(await tuning.call("CreateFinetune", trainer_pb2.CreateFinetuneRequest(
            caller=to_caller(principal), name=data.name, rank=data.rank)))

    @get("/finetunes", operation_id="listFinetunes", summary="List the tenant's finetunes")
    async def list_finetunes(self, tuning: TuningClient, principal: Principal) -> s.FinetuneList:
        reply = await tuning.call("ListFinetunes", trainer_pb2.ListFinetunesRequest(caller=to_caller(principal)))
        return s.FinetuneList([finetune_out(f) for f in reply.finetunes])

    @get("/finetunes/{finetune_id:str}", operation_id="getFinetune", summary="Get a finetune")
    async def get_finetune(self, tuning: TuningClient, principal: Principal,
                           finetune_id: FinetuneId) -> s.FinetuneEnvelope:
        return s.FinetuneEnvelope(finetune_out(await tuning.call("GetFinetune", trainer_pb2.FinetuneRequest(
            caller=to_caller(principal), finetune_id=finetune_id))))

    @delete("/finetunes/{finetune_id:str}", operation_id="deleteFinetune",
            summary="Delete a finetune, its checkpoints and its registry model")
    async def delete_finetune(self, tuning: TuningClient, principal: Principal, finetune_id: FinetuneId) -> None:
        await tuning.call("DeleteFinetune", trainer_pb2.FinetuneRequest(caller=to_caller(principal),
                                                                        finetune_id=finetune_id))

    @post("/rollouts", operation_id="tuningRollouts", status_code=200,
          summary="Sample n answers to one request from the finetune (rewards when ground_truth is given)")
    async def rollouts(self, tuning: TuningClient, principal: Principal, data: s.RolloutsBody) -> s.RolloutsOut:
        body = {"request": data.request, "num_rollouts": data.num_rollouts, "ground_truth": data.ground_truth}
        out = await tuning.json_call("Rollouts", principal, data.finetune_id, body)
        return s.RolloutsOut(request=out["request"], rollouts=out["rollouts"], rewards=out["rewards"])

    @post("/train_step", operation_id="tuningTrainStep", status_code=200,
          summary="One optimiser step over RL groups (rollouts + rewards) and SFT groups (targets)")
    async def train_step(self, tuning: TuningClient, principal: Principal, data: s.TrainStepBody) -> s.TrainStepOut:
        out = await tuning.json_call("TrainStep", principal, data.finetune_id, {"groups": data.groups, "lr": data.lr})
        return s.TrainStepOut(**{f: out.get(f) for f in s.TrainStepOut.__struct_fields__})

    @post("/finetunes/{finetune_id:str}/metrics", operation_id="logTuningMetrics", status_code=200,
          summary="Log the client's own metrics for a step")
    async def log_metrics(self, tuning: TuningClient, principal: Principal, finetune_id: FinetuneId,
                          data: s.MetricsBody) -> s.MetricsOut:
        out = await tuning.json_call("LogMetrics", principal, finetune_id, {"step": data.step,
                                                                            "metrics": data.metrics})
        return s.MetricsOut(**out)

    @get("/finetunes/{finetune_id:str}/checkpoints", operation_id="listCheckpoints",
         summary="Saved checkpoints, newest first")
    async def list_checkpoints(
            self, tuning: TuningClient, principal: Principal, finetune_id: FinetuneId,
            limit: Annotated[int, Parameter(ge=1, le=200, description="Checkpoints per page")] = 50,
            cursor: Annotated[str | None, Parameter(max_length=20, description="`next_cursor` of the previous page")]
            = None) -> s.CheckpointList:
        reply = await tuning.call("ListCheckpoints", trainer_pb2.FinetuneRequest(caller=to_caller(principal),
                                                                                 finetune_id=finetune_id))
        items = [checkpoint_out(c) for c in reply.checkpoints]
        start = int(cursor) if cursor and cursor.isdigit() else 0
        page = items[start:start + limit]
        more = start + limit < len(items)
        return s.CheckpointList(page, str(start + limit) if more else None, more)

    @post("/finetunes/{finetune_id:str}/checkpoints/save", operation_id="saveCheckpoint", status_code=200,
          summary="Save the finetune's current adapter as a checkpoint (a registry version)")
    async def save_checkpoint(self, tuning: TuningClient, principal: Principal,
                              finetune_id: FinetuneId) -> s.SaveCheckpointOut:
        reply = await tuning.call("SaveCheckpoint", trainer_pb2.FinetuneRequest(
            caller=to_caller(principal), finetune_id=finetune_id), timeout_s=300.0)
        return s.SaveCheckpointOut(ok=True, checkpoint=checkpoint_out(reply))

    @delete("/finetunes/{finetune_id:str}/checkpoints/{step:int}", operation_id="deleteCheckpoint",
            summary="Delete a checkpoint (it is no longer callable)")
    async def delete_checkpoint(self, tuning: TuningClient, principal: Principal, finetune_id: FinetuneId,
                                step: Annotated[int, Parameter(ge=0, le=2**31 - 1)]) -> None:
        await tuning.call("DeleteCheckpoint", trainer_pb2.CheckpointRequest(
            caller=to_caller(principal), finetune_id=finetune_id, step=step))
