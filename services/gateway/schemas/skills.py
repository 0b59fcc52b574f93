"""Bodies of the skill routes: Moondream-compatible caption/query/detect/point, compare, batch.

Field names and shapes follow Moondream's cloud API (`image_url`, `length`, `question`,
`object`, `stream`; answers under `caption`, `answer`, `objects`, `points`) so its official
client works unchanged; DreamForge adds `model`, `request_id`, `version`, `latency_ms`.
Moondream's `settings` are honoured where the model can: `max_tokens` (caption, query) bounds the
generated text, `max_objects` (detect, point) the boxes or points returned; `temperature` and
`top_p` are checked and ignored, as decoding is greedy (beam search for captions, boxes, points).
Other unknown fields (e.g. `reasoning`) are accepted and ignored.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from services.gateway.errors import ErrorDetail
from services.gateway.skills import (
    EXAMPLE_IMAGE,
    LIMITS_TEXT,
    MAX_BATCH_CALLS,
    MAX_COMPARE_MODELS,
    MAX_MODEL_CHARS,
    MAX_OBJECT_CHARS,
    MAX_QUESTION_CHARS,
    MAX_TOKENS,
)

ImageUrl = Annotated[str, msgspec.Meta(description=f"The image. {LIMITS_TEXT}", examples=[EXAMPLE_IMAGE])]
ModelRef = Annotated[str, msgspec.Meta(
    max_length=MAX_MODEL_CHARS,
    description='Which model answers: a name, `name@3` (exact version), `name@staging` (alias), a preview name, '
                'or absent / `"default"` for the tenant\'s production model (the built-in model when it has none)'),
] | None
Length = Annotated[Literal["short", "normal", "long"], msgspec.Meta(description="Caption length")]
Question = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_QUESTION_CHARS,
                                       description=f"The question about the image (1-{MAX_QUESTION_CHARS} characters)",
                                       examples=["What colour is the square?"])]
ObjectName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_OBJECT_CHARS,
                                         description=f'What to find, e.g. "red circle" (1-{MAX_OBJECT_CHARS} '
                                                     f'characters)', examples=["red square"])]
StreamFlag = Annotated[bool, msgspec.Meta(
    description='Stream the text as server-sent events: `data: {"chunk": "..."}` lines, then '
                '`data: {"completed": true, "request_id": ..., ...}`')]
OptionalQuestion = Annotated[str, msgspec.Meta(max_length=MAX_QUESTION_CHARS,
                                               description="query: the question (required for query)")] | None
OptionalObject = Annotated[str, msgspec.Meta(max_length=MAX_OBJECT_CHARS,
                                             description="detect, point: the object (required for them)")] | None
UnarySkill = Literal["caption", "query", "detect", "point"]


class Settings(msgspec.Struct):
    """Moondream's sampling settings."""

    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKENS, description="caption, query: the most tokens "
                                                                               "to generate")] | None = None
    max_objects: Annotated[int, msgspec.Meta(ge=1, le=1000, description="detect, point: the most boxes or "
                                                                         "points to return")] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2, description="Accepted and ignored: decoding is "
                                                                       "greedy")] | None = None
    top_p: Annotated[float, msgspec.Meta(ge=0, le=1, description="Accepted and ignored")] | None = None


MoondreamSettings = Annotated[Settings, msgspec.Meta(description="Moondream's `settings`")] | None


class CaptionRequest(msgspec.Struct):
    image_url: ImageUrl
    length: Length = "normal"
    stream: StreamFlag = False
    model: ModelRef = None
    settings: MoondreamSettings = None


class QueryRequest(msgspec.Struct):
    image_url: ImageUrl
    question: Question
    stream: StreamFlag = False
    model: ModelRef = None
    settings: MoondreamSettings = None


class DetectRequest(msgspec.Struct):
    image_url: ImageUrl
    object: ObjectName
    model: ModelRef = None
    settings: MoondreamSettings = None


class PointRequest(msgspec.Struct):
    image_url: ImageUrl
    object: ObjectName
    model: ModelRef = None
    settings: MoondreamSettings = None


def max_tokens(settings: Settings | None) -> int:
    return (settings.max_tokens or 0) if settings else 0


def max_objects(settings: Settings | None) -> int:
    return (settings.max_objects or 0) if settings else 0


class Metrics(msgspec.Struct):
    input_tokens: int
    output_tokens: int


class Box(msgspec.Struct):
    """A bounding box in normalised [0, 1] image coordinates (origin top-left)."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float


class PointXY(msgspec.Struct):
    """A point in normalised [0, 1] image coordinates (origin top-left)."""

    x: float
    y: float


RequestId = Annotated[str, msgspec.Meta(description="This output's id (also the `X-Request-Id` header): rate it "
                                                    "with it")]
ServedModel = Annotated[str, msgspec.Meta(description="Id of the model that answered")]
Version = Annotated[int, msgspec.Meta(description="Version of the model that answered (0 = the base model)")]
Alias = Annotated[str, msgspec.Meta(description="Alias or preview that chose the version, when one did")]


class CaptionResponse(msgspec.Struct):
    caption: str
    request_id: RequestId
    model: ServedModel
    version: Version
    alias: Alias
    latency_ms: float
    metrics: Metrics


class QueryResponse(msgspec.Struct):
    answer: str
    request_id: RequestId
    model: ServedModel
    version: Version
    alias: Alias
    latency_ms: float
    metrics: Metrics


class DetectResponse(msgspec.Struct):
    objects: list[Box]
    request_id: RequestId
    model: ServedModel
    version: Version
    alias: Alias
    latency_ms: float
    metrics: Metrics


class PointResponse(msgspec.Struct):
    points: list[PointXY]
    request_id: RequestId
    model: ServedModel
    version: Version
    alias: Alias
    latency_ms: float
    metrics: Metrics


class CompareRequest(msgspec.Struct):
    skill: UnarySkill
    image_url: ImageUrl
    models: Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_MODEL_CHARS)]], msgspec.Meta(
        min_length=1, max_length=MAX_COMPARE_MODELS,
        description=f"1-{MAX_COMPARE_MODELS} model references (as `model` elsewhere), each answering the same "
                    f"call; e.g. `[\"shapes@production\", \"shapes@4\", \"my-preview\"]`")]
    length: Length = "normal"
    question: OptionalQuestion = None
    object: OptionalObject = None


class BatchCall(msgspec.Struct):
    skill: UnarySkill
    image_url: ImageUrl
    model: ModelRef = None
    length: Length = "normal"
    question: OptionalQuestion = None
    object: OptionalObject = None


class BatchRequest(msgspec.Struct):
    requests: Annotated[list[BatchCall], msgspec.Meta(
        min_length=1, max_length=MAX_BATCH_CALLS,
        description=f"1-{MAX_BATCH_CALLS} skill calls (more is a 400; the whole body is also bounded by the "
                    f"gateway's body limit, 413 above it)")]


class SkillResult(msgspec.Struct, omit_defaults=True):
    """One call's output (the field of its skill) or its `error`, never both."""

    skill: str
    request_id: RequestId
    reference: Annotated[str, msgspec.Meta(description="The model reference this call asked for")]
    status: Annotated[int, msgspec.Meta(description="200, or the HTTP status this call alone would have failed with")]
    model: str = ""
    version: int = 0
    alias: str = ""
    latency_ms: float = 0.0
    caption: str | None = None
    answer: str | None = None
    objects: list[Box] | None = None
    points: list[PointXY] | None = None
    metrics: Metrics | None = None
    error: ErrorDetail | None = None


class CompareResponse(msgspec.Struct):
    request_id: RequestId
    skill: str
    results: Annotated[list[SkillResult], msgspec.Meta(description="One per entry of `models`, in order")]


class BatchResponse(msgspec.Struct):
    request_id: RequestId
    results: Annotated[list[SkillResult], msgspec.Meta(description="One per entry of `requests`, in order")]
