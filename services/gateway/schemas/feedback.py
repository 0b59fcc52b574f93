"""JSON bodies of the feedback, rater, reward-function and scoring routes.

A rating's `value` depends on its kind: thumbs `"up"|"down"`, score `1..5`, pairwise the
request id of the preferred output, correction the corrected text, flag `"wrong"|"unsafe"|"other"`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="`request_id` of a served output")]
Kind = Literal["thumbs", "score", "pairwise", "correction", "flag"]
Skill = Literal["caption", "query", "detect", "point", "chat"]
Comment = Annotated[str, msgspec.Meta(max_length=2000)]
Definition = Annotated[dict[str, Any], msgspec.Meta(
    description='`{"terms": [{"metric", "weight", "direction": "maximize"|"minimize", "params", "name"?}], '
                '"description"?}`; see `GET /v1/reward-metrics` for the metrics and their parameters',
    examples=[{"terms": [{"metric": "exact_match", "weight": 1.0},
                         {"metric": "latency_ms", "weight": 0.2, "direction": "minimize",
                          "params": {"max_ms": 500}}]}])]


class SubmitFeedback(msgspec.Struct, forbid_unknown_fields=True):
    request_id: RequestId
    kind: Kind
    value: Annotated[Any, msgspec.Meta(description='thumbs "up"|"down"; score 1-5; pairwise: the preferred '
                                                   'request id; correction: text; flag "wrong"|"unsafe"|"other"')]
    other_request_id: Annotated[str, msgspec.Meta(max_length=100, description="pairwise: the other output")] = ""
    comment: Comment = ""


class EditFeedback(msgspec.Struct, forbid_unknown_fields=True):
    value: Any
    comment: Comment | None = None


class FeedbackOut(msgspec.Struct):
    id: str
    request_id: str
    rater_id: str
    kind: str
    value: Any
    other_request_id: str
    comment: str
    revision: int
    created_at: datetime | None
    updated_at: datetime | None
    withdrawn: bool = False


class FeedbackList(msgspec.Struct):
    feedback: list[FeedbackOut]
    next_page_token: str


class OutputOut(msgspec.Struct):
    request_id: str
    model_id: str
    version: int
    skill: str
    prompt: str
    image_ref: str
    output: Any
    latency_ms: float
    created_at: datetime | None


class QueueItemOut(msgspec.Struct):
    item: OutputOut | None
    remaining: int
    overlap: int


class TaskAgreementOut(msgspec.Struct):
    skill: str
    kind: str
    level: str
    alpha: float | None
    items: int
    raters: int
    ratings: int
    note: str


class AgreementOut(msgspec.Struct):
    tasks: list[TaskAgreementOut]


class CreateRewardFunction(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    definition: Definition
    active: Annotated[bool, msgspec.Meta(description="Score incoming ratings with this function")] = False


class NewRewardFunctionVersion(msgspec.Struct, forbid_unknown_fields=True):
    definition: Definition
    name: Annotated[str, msgspec.Meta(max_length=200, description="Empty keeps the name")] = ""
    active: bool = False


class RewardFunctionOut(msgspec.Struct):
    id: str
    version: int
    name: str
    definition: dict[str, Any]
    active: bool
    created_at: datetime | None
    created_by: str


class RewardFunctionList(msgspec.Struct):
    functions: list[RewardFunctionOut]
    next_page_token: str


class MetricParamOut(msgspec.Struct):
    name: str
    kind: str
    required: bool
    default: Any
    description: str


class MetricOut(msgspec.Struct):
    name: str
    description: str
    range: str
    normalisation: str
    params: list[MetricParamOut]


class MetricList(msgspec.Struct):
    metrics: list[MetricOut]


class OutputToScore(msgspec.Struct, forbid_unknown_fields=True):
    request_id: Annotated[str, msgspec.Meta(max_length=100, description="A served output (alone), or:")] = ""
    skill: Skill | None = None
    prompt: Annotated[str, msgspec.Meta(max_length=4000)] = ""
    output: Annotated[Any, msgspec.Meta(description="Text, or the JSON a skill answered (e.g. detect's objects)")] \
        = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0, le=3_600_000)] | None = None


class ScoreRequest(msgspec.Struct, forbid_unknown_fields=True):
    outputs: Annotated[list[OutputToScore], msgspec.Meta(min_length=1, max_length=64)]
    reward_function_id: Annotated[str, msgspec.Meta(max_length=40)] = ""
    version: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1, description="0 = latest")] = 0
    definition: Definition | None = None
    reference: Annotated[dict[str, Any] | None, msgspec.Meta(
        description='Ground truth: {"answer"}, {"objects": [{colour, shape, box}]}, {"boxes"} or {"correction"}')] \
        = None


class ScoreOut(msgspec.Struct):
    request_id: str
    reward: float
    terms: dict[str, float]


class ScoreResponse(msgspec.Struct):
    reward_function_id: str
    version: int
    scores: list[ScoreOut]


class DataSettingsIn(msgspec.Struct, forbid_unknown_fields=True):
    retention_days: Annotated[int, msgspec.Meta(ge=0, le=36500, description="0 = keep forever")]
    queue_overlap: Annotated[int, msgspec.Meta(ge=1, le=20, description="Raters per queued output")]


class DataSettingsOut(msgspec.Struct):
    retention_days: int
    queue_overlap: int


class DataCountsOut(msgspec.Struct):
    outputs: int
    feedback: int
    reward_functions: int
    queue_assignments: int
    images: int
