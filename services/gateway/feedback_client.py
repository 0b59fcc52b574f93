"""The REST routes' view of the feedback service: JSON schemas in, gRPC calls with the caller, JSON out.

Every call carries the caller's `Caller` (tenant and key from the API key: the key is the rater)
and a deadline; gRPC errors propagate and `errors.py` turns them into HTTP statuses. Reward-function
definitions are validated here too, so a bad one is a 422 naming the field before any call.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from litestar.exceptions import HTTPException

from dreamforge.rewards import METRICS, RewardDefinitionError, parse_reward_function
from dreamforge.v1 import common_pb2, feedback_pb2, feedback_pb2_grpc
from services.gateway.auth import to_caller
from services.gateway.keys import Principal
from services.gateway.schemas import feedback as s
from services.gateway.skills import Unavailable


def _time(ts: Timestamp) -> datetime | None:
    return ts.ToDatetime(tzinfo=UTC) if ts.seconds or ts.nanos else None


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def feedback_out(f: feedback_pb2.Feedback) -> s.FeedbackOut:
    return s.FeedbackOut(id=f.id, request_id=f.request_id, rater_id=f.rater_id, kind=f.kind, value=_json(f.value_json),
                         other_request_id=f.other_request_id, comment=f.comment, revision=f.revision,
                         created_at=_time(f.created_at), updated_at=_time(f.updated_at), withdrawn=f.withdrawn)


def output_out(o: feedback_pb2.Output) -> s.OutputOut:
    return s.OutputOut(request_id=o.request_id, model_id=o.model_id, version=o.version, skill=o.skill, prompt=o.prompt,
                       image_ref=o.image_ref, output=_json(o.output_json), latency_ms=o.latency_ms,
                       created_at=_time(o.created_at))


def function_out(f: feedback_pb2.RewardFunction) -> s.RewardFunctionOut:
    return s.RewardFunctionOut(id=f.id, version=f.version, name=f.name, definition=_json(f.definition_json) or {},
                               active=f.active, created_at=_time(f.created_at), created_by=f.created_by)


def counts_out(c: feedback_pb2.DataCounts) -> s.DataCountsOut:
    return s.DataCountsOut(outputs=c.outputs, feedback=c.feedback, reward_functions=c.reward_functions,
                           queue_assignments=c.queue_assignments, images=c.images)


def check_definition(definition: dict[str, Any], field: str = "definition") -> str:
    """The definition as JSON; 422 naming the offending field when it cannot be used."""
    try:
        parse_reward_function(definition)
    except RewardDefinitionError as exc:
        where = field if exc.field == "definition" else f"{field}.{exc.field}"
        raise HTTPException(status_code=422, detail=f"body field `{where}`: {exc.message}") from None
    return json.dumps(definition)


def metric_list() -> s.MetricList:
    return s.MetricList([s.MetricOut(
        name=m.name, description=m.description, range=m.raw_range, normalisation=m.normalisation,
        params=[s.MetricParamOut(p.name, p.kind, p.required, p.default, p.doc) for p in m.params])
        for m in METRICS.values()])


def _page(page_size: int, page_token: str) -> common_pb2.PageRequest:
    return common_pb2.PageRequest(page_size=page_size, page_token=page_token)


class FeedbackClient:
    """Calls `FeedbackService` on behalf of an authenticated principal."""

    def __init__(self, stub: feedback_pb2_grpc.FeedbackServiceStub | None, timeout_s: float = 30.0) -> None:
        self._stub = stub
        self.timeout_s = timeout_s

    @property
    def stub(self) -> feedback_pb2_grpc.FeedbackServiceStub:
        if self._stub is None:  # a gateway built without a feedback address (some tests)
            raise Unavailable("no feedback service is configured on this gateway")
        return self._stub

    # -- ratings ------------------------------------------------------------------
    async def submit(self, who: Principal, data: s.SubmitFeedback, idempotency_key: str) -> s.FeedbackOut:
        reply = await self.stub.SubmitFeedback(feedback_pb2.SubmitFeedbackRequest(
            caller=to_caller(who), request_id=data.request_id, kind=data.kind, value_json=json.dumps(data.value),
            other_request_id=data.other_request_id, comment=data.comment, idempotency_key=idempotency_key),
            timeout=self.timeout_s)
        return feedback_out(reply)

    async def list(self, who: Principal, request_id: str, mine: bool, page_size: int, page_token: str
                   ) -> s.FeedbackList:
        reply = await self.stub.ListFeedback(feedback_pb2.ListFeedbackRequest(
            caller=to_caller(who), request_id=request_id, mine=mine, page=_page(page_size, page_token)),
            timeout=self.timeout_s)
        return s.FeedbackList([feedback_out(f) for f in reply.feedback], reply.page.next_page_token)

    async def edit(self, who: Principal, feedback_id: str, data: s.EditFeedback) -> s.FeedbackOut:
        reply = await self.stub.UpdateFeedback(feedback_pb2.UpdateFeedbackRequest(
            caller=to_caller(who), id=feedback_id, value_json=json.dumps(data.value), comment=data.comment or ""),
            timeout=self.timeout_s)
        return feedback_out(reply)

    async def withdraw(self, who: Principal, feedback_id: str) -> s.FeedbackOut:
        reply = await self.stub.WithdrawFeedback(feedback_pb2.WithdrawFeedbackRequest(
            caller=to_caller(who), id=feedback_id), timeout=self.timeout_s)
        return feedback_out(reply)

    async def output(self, who: Principal, request_id: str) -> s.OutputOut:
        reply = await self.stub.GetOutput(feedback_pb2.GetOutputRequest(caller=to_caller(who), request_id=request_id),
                                          timeout=self.timeout_s)
        return output_out(reply)

    # -- raters -------------------------------------------------------------------
    async def next_item(self, who: Principal, skill: str) -> s.QueueItemOut:
        reply = await self.stub.NextQueueItem(feedback_pb2.NextQueueItemRequest(caller=to_caller(who), skill=skill),
                                              timeout=self.timeout_s)
        item = output_out(reply.output) if reply.HasField("output") else None
        return s.QueueItemOut(item=item, remaining=reply.remaining, overlap=reply.overlap)

    async def agreement(self, who: Principal) -> s.AgreementOut:
        reply = await self.stub.GetAgreement(feedback_pb2.GetAgreementRequest(caller=to_caller(who)),
                                             timeout=self.timeout_s)
        return s.AgreementOut([s.TaskAgreementOut(
            skill=t.skill, kind=t.kind, level=t.level, alpha=None if math.isnan(t.alpha) else t.alpha, items=t.items,
            raters=t.raters, ratings=t.ratings, note=t.note) for t in reply.tasks])

    # -- reward functions -----------------------------------------------------------
    async def save_function(self, who: Principal, rf_id: str, name: str, definition: dict[str, Any],
                            active: bool) -> s.RewardFunctionOut:
        definition_json = check_definition(definition)
        reply = await self.stub.SaveRewardFunction(feedback_pb2.SaveRewardFunctionRequest(
            caller=to_caller(who), id=rf_id, name=name, definition_json=definition_json, active=active),
            timeout=self.timeout_s)
        return function_out(reply)

    async def list_functions(self, who: Principal, page_size: int, page_token: str) -> s.RewardFunctionList:
        reply = await self.stub.ListRewardFunctions(feedback_pb2.ListRewardFunctionsRequest(
            caller=to_caller(who), page=_page(page_size, page_token)), timeout=self.timeout_s)
        return s.RewardFunctionList([function_out(f) for f in reply.functions], reply.page.next_page_token)

    async def function_versions(self, who: Principal, rf_id: str, page_size: int, page_token: str
                                ) -> s.RewardFunctionList:
        reply = await self.stub.ListRewardFunctionVersions(feedback_pb2.ListRewardFunctionVersionsRequest(
            caller=to_caller(who), id=rf_id, page=_page(page_size, page_token)), timeout=self.timeout_s)
        return s.RewardFunctionList([function_out(f) for f in reply.functions], reply.page.next_page_token)

    async def get_function(self, who: Principal, rf_id: str, version: int) -> s.RewardFunctionOut:
        reply = await self.stub.GetRewardFunction(feedback_pb2.GetRewardFunctionRequest(
            caller=to_caller(who), id=rf_id, version=version), timeout=self.timeout_s)
        return function_out(reply)

    async def score(self, who: Principal, data: s.ScoreRequest) -> s.ScoreResponse:
        definition_json = check_definition(data.definition) if data.definition is not None else ""
        outputs = []
        for o in data.outputs:
            text = "" if o.output is None else o.output if isinstance(o.output, str) else json.dumps(o.output)
            outputs.append(feedback_pb2.Output(request_id=o.request_id, skill=o.skill or "", prompt=o.prompt,
                                               output_json=text, latency_ms=o.latency_ms or 0.0))
        reply = await self.stub.ScoreOutputs(feedback_pb2.ScoreOutputsRequest(
            caller=to_caller(who), reward_function_id=data.reward_function_id, reward_function_version=data.version,
            definition_json=definition_json, outputs=outputs,
            reference_json=json.dumps(data.reference) if data.reference is not None else ""), timeout=self.timeout_s)
        return s.ScoreResponse(reply.reward_function_id, reply.reward_function_version,
                               [s.ScoreOut(x.request_id, x.reward, dict(x.terms)) for x in reply.scores])

    # -- data rights --------------------------------------------------------------
    @staticmethod
    def _for(who: Principal, tenant_id: str) -> common_pb2.Caller:
        caller = to_caller(who)
        if tenant_id:
            caller.tenant_id = tenant_id
        return caller

    async def data_settings(self, who: Principal, tenant_id: str) -> s.DataSettingsOut:
        reply = await self.stub.GetDataSettings(feedback_pb2.GetDataSettingsRequest(
            caller=self._for(who, tenant_id)), timeout=self.timeout_s)
        return s.DataSettingsOut(reply.retention_days, reply.queue_overlap)

    async def update_data_settings(self, who: Principal, tenant_id: str, data: s.DataSettingsIn
                                   ) -> s.DataSettingsOut:
        reply = await self.stub.UpdateDataSettings(feedback_pb2.UpdateDataSettingsRequest(
            caller=self._for(who, tenant_id), settings=feedback_pb2.DataSettings(
                retention_days=data.retention_days, queue_overlap=data.queue_overlap)), timeout=self.timeout_s)
        return s.DataSettingsOut(reply.retention_days, reply.queue_overlap)

    async def purge(self, who: Principal, tenant_id: str) -> s.DataCountsOut:
        return counts_out(await self.stub.PurgeExpired(feedback_pb2.PurgeExpiredRequest(
            caller=self._for(who, tenant_id)), timeout=self.timeout_s))

    async def delete_all(self, who: Principal, tenant_id: str) -> s.DataCountsOut:
        return counts_out(await self.stub.DeleteTenantData(feedback_pb2.DeleteTenantDataRequest(
            caller=self._for(who, tenant_id)), timeout=self.timeout_s))

    async def export(self, who: Principal, tenant_id: str) -> AsyncIterator[bytes]:
        """JSON lines: `{"type": ..., "data": {...}}` per record. The first record is read before the
        response starts, so a failing backend is still an error status, not a truncated 200."""
        call = self.stub.ExportTenantData(feedback_pb2.ExportTenantDataRequest(
            caller=self._for(who, tenant_id)), timeout=max(self.timeout_s, 300.0))
        stream = call.__aiter__()
        first = await stream.__anext__()

        async def lines() -> AsyncIterator[bytes]:
            record: feedback_pb2.ExportRecord | None = first
            while record is not None:
                yield (json.dumps({"type": record.type, "data": json.loads(record.json)}) + "\n").encode()
                try:
                    record = await stream.__anext__()
                except StopAsyncIteration:
                    record = None

        return lines()
