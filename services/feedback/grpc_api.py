"""FeedbackService over gRPC: served outputs can be fetched; rating, queues and reward
functions answer UNIMPLEMENTED until the feedback issue lands."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from dreamforge.grpcio import NotFound, grpc_errors, pending
from dreamforge.v1 import feedback_pb2, feedback_pb2_grpc
from services.feedback.outputs import OutputStore


class FeedbackServicer(feedback_pb2_grpc.FeedbackServiceServicer):
    def __init__(self, outputs: OutputStore) -> None:
        self.outputs = outputs

    @grpc_errors
    async def GetOutput(
        self, request: feedback_pb2.GetOutputRequest, context: grpc.aio.ServicerContext
    ) -> feedback_pb2.Output:
        row = await self.outputs.get(request.caller.tenant_id, request.request_id)
        if row is None:
            raise NotFound(f"no served output with request id {request.request_id!r}")
        created = Timestamp()
        created.FromDatetime(row.created_at)
        return feedback_pb2.Output(
            request_id=row.request_id, model_id=row.model_id, version=row.version, skill=row.skill,
            prompt=row.prompt, image_ref=row.image_ref, output_json=row.output_json,
            latency_ms=row.latency_ms, created_at=created)

    SubmitFeedback = pending("rating outputs")
    ListFeedback = pending("listing ratings")
    NextQueueItem = pending("the rater queue")
    SaveRewardFunction = pending("reward functions")
    ListRewardFunctions = pending("reward functions")
    ScoreOutputs = pending("reward scoring")
