"""FeedbackService over gRPC: every call is scoped to `caller.tenant_id`; the rater is `caller.key_id`."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from google.protobuf.timestamp_pb2 import Timestamp

from dreamforge.grpcio import InvalidArgument, NotFound, grpc_errors
from dreamforge.rewards import ScoringItem
from dreamforge.rewards.items import SKILLS
from dreamforge.v1 import common_pb2, feedback_pb2, feedback_pb2_grpc
from services.feedback.agreement import agreement
from services.feedback.data_rights import Counts, DataRights, DataSettings
from services.feedback.outputs import OutputStore
from services.feedback.queue import RaterQueue
from services.feedback.ratings import Rating, Ratings
from services.feedback.reward_functions import RewardFunctionRow, RewardFunctions, validate_definition
from services.feedback.scoring import item_of

_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
MAX_SCORED = 64


def _tenant(caller: common_pb2.Caller, *, rater: bool = False) -> str:
    if not _TENANT.match(caller.tenant_id):
        raise InvalidArgument("caller.tenant_id is required and must match ^[A-Za-z0-9_-]{1,100}$")
    if rater and not caller.key_id:
        raise InvalidArgument("caller.key_id is required: the rater is the calling API key")
    return caller.tenant_id


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def output_pb(row: Any) -> feedback_pb2.Output:
    return feedback_pb2.Output(
        request_id=row.request_id, model_id=row.model_id, version=row.version, skill=row.skill, prompt=row.prompt,
        image_ref=row.image_ref, output_json=row.output_json, latency_ms=row.latency_ms,
        created_at=_ts(row.created_at))


def rating_pb(r: Rating, withdrawn: bool = False) -> feedback_pb2.Feedback:
    return feedback_pb2.Feedback(
        id=r.id, request_id=r.request_id, rater_id=r.rater_id, kind=r.kind, value_json=r.value_json,
        other_request_id=r.other_request_id, created_at=_ts(r.created_at), comment=r.comment, revision=r.revision,
        updated_at=_ts(r.updated_at), withdrawn=withdrawn)


def function_pb(f: RewardFunctionRow) -> feedback_pb2.RewardFunction:
    return feedback_pb2.RewardFunction(id=f.id, version=f.version, name=f.name, definition_json=f.definition_json,
                                       created_at=_ts(f.created_at), active=f.active, created_by=f.created_by)


def counts_pb(c: Counts) -> feedback_pb2.DataCounts:
    return feedback_pb2.DataCounts(outputs=c.outputs, feedback=c.feedback, reward_functions=c.reward_functions,
                                   queue_assignments=c.queue_assignments, images=c.images)


class FeedbackServicer(feedback_pb2_grpc.FeedbackServiceServicer):
    def __init__(self, outputs: OutputStore, ratings: Ratings, functions: RewardFunctions, queue: RaterQueue,
                 data: DataRights) -> None:
        self.outputs = outputs
        self.ratings = ratings
        self.functions = functions
        self.queue = queue
        self.data = data

    @grpc_errors
    async def GetOutput(self, request: feedback_pb2.GetOutputRequest, context: Any) -> feedback_pb2.Output:
        row = await self.outputs.get(_tenant(request.caller), request.request_id)
        if row is None:
            raise NotFound(f"no served output with request id {request.request_id!r}")
        return output_pb(row)

    # -- ratings ------------------------------------------------------------------
    @grpc_errors
    async def SubmitFeedback(self, request: feedback_pb2.SubmitFeedbackRequest, context: Any) -> feedback_pb2.Feedback:
        tenant = _tenant(request.caller, rater=True)
        rating = await self.ratings.submit(tenant, request.caller.key_id, request.request_id, request.kind,
                                           request.value_json, request.other_request_id, request.comment,
                                           request.idempotency_key)
        return rating_pb(rating)

    @grpc_errors
    async def ListFeedback(self, request: feedback_pb2.ListFeedbackRequest, context: Any
                           ) -> feedback_pb2.ListFeedbackResponse:
        tenant = _tenant(request.caller, rater=request.mine)
        page = await self.ratings.list(tenant, request.request_id, request.caller.key_id if request.mine else None,
                                       request.page.page_size, request.page.page_token)
        return feedback_pb2.ListFeedbackResponse(feedback=[rating_pb(r) for r in page.items],
                                                 page=common_pb2.PageInfo(next_page_token=page.next_page_token))

    @grpc_errors
    async def UpdateFeedback(self, request: feedback_pb2.UpdateFeedbackRequest, context: Any) -> feedback_pb2.Feedback:
        tenant = _tenant(request.caller, rater=True)
        comment = request.comment or None  # empty keeps the comment
        return rating_pb(await self.ratings.update(tenant, request.caller.key_id, request.id, request.value_json,
                                                   comment))

    @grpc_errors
    async def WithdrawFeedback(self, request: feedback_pb2.WithdrawFeedbackRequest, context: Any
                               ) -> feedback_pb2.Feedback:
        tenant = _tenant(request.caller, rater=True)
        return rating_pb(await self.ratings.withdraw(tenant, request.caller.key_id, request.id), withdrawn=True)

    # -- raters -------------------------------------------------------------------
    @grpc_errors
    async def NextQueueItem(self, request: feedback_pb2.NextQueueItemRequest, context: Any) -> feedback_pb2.QueueItem:
        tenant = _tenant(request.caller, rater=True)
        if request.skill and request.skill not in SKILLS:
            raise InvalidArgument(f"skill {request.skill!r} is not a skill: use one of {', '.join(SKILLS)}")
        overlap = (await self.data.settings(tenant)).queue_overlap
        row, remaining = await self.queue.next(tenant, request.caller.key_id, overlap, request.skill)
        return feedback_pb2.QueueItem(output=output_pb(row) if row is not None else None, remaining=remaining,
                                      overlap=overlap)

    @grpc_errors
    async def GetAgreement(self, request: feedback_pb2.GetAgreementRequest, context: Any
                           ) -> feedback_pb2.AgreementReport:
        tenant = _tenant(request.caller)
        r, o = self.ratings.t, self.outputs.outputs
        async with self.ratings.db.engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(o.c.skill, r.c.kind, r.c.rater_id, r.c.request_id, r.c.value_json, r.c.other_request_id)
                .join(o, o.c.request_id == r.c.request_id).where(r.c.tenant_id == tenant))).all()
        tasks = agreement([(x.skill, x.kind, x.rater_id, x.request_id, json.loads(x.value_json), x.other_request_id)
                           for x in rows])
        return feedback_pb2.AgreementReport(tasks=[feedback_pb2.TaskAgreement(**t.__dict__) for t in tasks])

    # -- reward functions -----------------------------------------------------------
    @grpc_errors
    async def SaveRewardFunction(self, request: feedback_pb2.SaveRewardFunctionRequest, context: Any
                                 ) -> feedback_pb2.RewardFunction:
        tenant = _tenant(request.caller)
        return function_pb(await self.functions.save(tenant, request.id, request.name, request.definition_json,
                                                     request.active, request.caller.key_id))

    @grpc_errors
    async def ListRewardFunctions(self, request: feedback_pb2.ListRewardFunctionsRequest, context: Any
                                  ) -> feedback_pb2.ListRewardFunctionsResponse:
        page = await self.functions.list_latest(_tenant(request.caller), request.page.page_size,
                                                request.page.page_token)
        return _functions(page.items, page.next_page_token)

    @grpc_errors
    async def ListRewardFunctionVersions(self, request: feedback_pb2.ListRewardFunctionVersionsRequest, context: Any
                                         ) -> feedback_pb2.ListRewardFunctionsResponse:
        page = await self.functions.versions(_tenant(request.caller), request.id, request.page.page_size,
                                             request.page.page_token)
        return _functions(page.items, page.next_page_token)

    @grpc_errors
    async def GetRewardFunction(self, request: feedback_pb2.GetRewardFunctionRequest, context: Any
                                ) -> feedback_pb2.RewardFunction:
        if request.version < 0:
            raise InvalidArgument("version must be 0 (latest) or a version number")
        return function_pb(await self.functions.get(_tenant(request.caller), request.id, request.version))

    @grpc_errors
    async def ScoreOutputs(self, request: feedback_pb2.ScoreOutputsRequest, context: Any
                           ) -> feedback_pb2.ScoreOutputsResponse:
        tenant = _tenant(request.caller)
        if request.definition_json:
            rf = RewardFunctionRow("", 0, "", validate_definition(request.definition_json), False, "", None)
        elif request.reward_function_id:
            rf = await self.functions.get(tenant, request.reward_function_id, request.reward_function_version)
        else:
            rf = (await self.functions.active(tenant))[0]
        if not 1 <= len(request.outputs) <= MAX_SCORED:
            raise InvalidArgument(f"outputs: send 1 to {MAX_SCORED} outputs to score")
        reference = _reference(request.reference_json)
        spec = rf.spec
        scores = []
        for i, out in enumerate(request.outputs):
            item = await self._item(tenant, i, out, reference)
            score = spec.score(item)
            scores.append(feedback_pb2.Score(reward=score.reward, terms=score.terms, request_id=out.request_id))
        return feedback_pb2.ScoreOutputsResponse(scores=scores, reward_function_id=rf.id,
                                                 reward_function_version=rf.version)

    async def _item(self, tenant: str, i: int, out: feedback_pb2.Output, reference: dict[str, Any] | None
                    ) -> ScoringItem:
        if out.request_id and not out.output_json:
            row = await self.outputs.get(tenant, out.request_id)
            if row is None:
                raise NotFound(f"outputs[{i}].request_id: no served output {out.request_id!r} in your tenant")
            return item_of(row, reference=reference)
        if out.skill not in SKILLS:
            raise InvalidArgument(f"outputs[{i}].skill: {out.skill!r} is not a skill; use one of {', '.join(SKILLS)}")
        if not out.output_json:
            raise InvalidArgument(f"outputs[{i}].output: give the output to score (or a served request_id)")
        return ScoringItem(skill=out.skill, prompt=out.prompt, output=out.output_json, reference=reference,
                           latency_ms=out.latency_ms if out.latency_ms > 0 else None)

    # -- data rights --------------------------------------------------------------
    @grpc_errors
    async def GetDataSettings(self, request: feedback_pb2.GetDataSettingsRequest, context: Any
                              ) -> feedback_pb2.DataSettings:
        s = await self.data.settings(_tenant(request.caller))
        return feedback_pb2.DataSettings(retention_days=s.retention_days, queue_overlap=s.queue_overlap)

    @grpc_errors
    async def UpdateDataSettings(self, request: feedback_pb2.UpdateDataSettingsRequest, context: Any
                                 ) -> feedback_pb2.DataSettings:
        new = DataSettings(request.settings.retention_days, request.settings.queue_overlap)
        s = await self.data.update(_tenant(request.caller), new)
        return feedback_pb2.DataSettings(retention_days=s.retention_days, queue_overlap=s.queue_overlap)

    @grpc_errors
    async def PurgeExpired(self, request: feedback_pb2.PurgeExpiredRequest, context: Any) -> feedback_pb2.DataCounts:
        return counts_pb(await self.data.purge(_tenant(request.caller)))

    @grpc_errors
    async def DeleteTenantData(self, request: feedback_pb2.DeleteTenantDataRequest, context: Any
                               ) -> feedback_pb2.DataCounts:
        return counts_pb(await self.data.delete_tenant(_tenant(request.caller)))

    @grpc_errors  # type: ignore[type-var]
    async def ExportTenantData(self, request: feedback_pb2.ExportTenantDataRequest, context: Any
                               ) -> AsyncIterator[feedback_pb2.ExportRecord]:
        async for kind, doc in self.data.export(_tenant(request.caller)):
            yield feedback_pb2.ExportRecord(type=kind, json=json.dumps(doc))


def _functions(items: list[RewardFunctionRow], token: str) -> feedback_pb2.ListRewardFunctionsResponse:
    return feedback_pb2.ListRewardFunctionsResponse(functions=[function_pb(f) for f in items],
                                                    page=common_pb2.PageInfo(next_page_token=token))


def _reference(text: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidArgument("reference: not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidArgument('reference must be a JSON object, e.g. {"answer": "red"} or {"objects": [...]}')
    return value
