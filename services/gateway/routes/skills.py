"""Skill routes (scope `app`): DreamForge's and Moondream's REST API on the same paths.

`POST /v1/caption|query|detect|point` take and answer exactly what Moondream's cloud API
does (so `moondream.vl(endpoint="http://<gateway>/v1", api_key=...)` works unchanged),
plus `model` to pick a model/version/alias/preview and `request_id`, `model`, `version`,
`latency_ms` in every answer. `POST /v1/compare` runs one call on several models side by
side (A/B); `POST /v1/batch` runs up to `MAX_BATCH_CALLS` calls at once. Every call goes
through `SkillService`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, post
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Operation, Schema
from litestar.response import Stream

from services.gateway.auth import requires, to_caller
from services.gateway.errors import ErrorDetail
from services.gateway.idempotency import IdempotencyKeyHeader
from services.gateway.keys import Principal
from services.gateway.openapi import BACKEND_STATUSES, error_responses
from services.gateway.request_ids import ensure_request_id
from services.gateway.routes.admin import SECURITY
from services.gateway.schemas import skills as s
from services.gateway.skills import (
    LIMITS_TEXT,
    MAX_BATCH_CALLS,
    MAX_COMPARE_MODELS,
    Outcome,
    SkillCall,
    SkillService,
    body,
    image_bytes_async,
    model_reference,
    object_text,
    question_text,
)
from services.gateway.sse import MOONDREAM_EVENTS, SSE_HEADERS, moondream_events
from services.gateway.uploads import UPLOAD_TEXT, upload_operation

APP = [requires("app")]
#: Every status a backend (inference, via the registry) failure can become, documented on each skill route.
BACKEND_ERRORS = error_responses(*BACKEND_STATUSES, 402, 422)  # 402/429: the plan quota; 409/422: Idempotency-Key
SSE_DESCRIPTION = ('With `"stream": true`: `text/event-stream`, one `data: {"chunk": "...", "completed": false}` '
                   'line per piece of text, then `data: {"completed": true, "request_id", "model", "version", '
                   '"alias", "latency_ms", "metrics"}`. A failure after the stream started is `event: error` '
                   'with `data: {"error": {"code", "message", "request_id"}}`.')


def streaming_operation(events: Schema) -> type[Operation]:
    """An operation whose 200 is JSON or, when the body asks to stream, server-sent `events`."""

    @dataclass
    class StreamingOperation(Operation):
        def __post_init__(self) -> None:
            ok = (self.responses or {}).get("200")
            if isinstance(ok, OpenAPIResponse):
                ok.content = {**(ok.content or {}), "text/event-stream": OpenAPIMediaType(schema=events)}

    return StreamingOperation


MoondreamStream = streaming_operation(MOONDREAM_EVENTS)
DESCRIPTION = f"{LIMITS_TEXT} {UPLOAD_TEXT}"


def served(response: Any) -> dict[str, Any]:
    return {"request_id": response.request_id, "model": response.model_id, "version": response.version,
            "alias": response.alias, "latency_ms": round(response.latency_ms, 3),
            "metrics": s.Metrics(response.input_tokens, response.output_tokens)}


def boxes(response: Any) -> list[s.Box]:
    return [s.Box(b.x_min, b.y_min, b.x_max, b.y_max) for b in response.objects]


def points(response: Any) -> list[s.PointXY]:
    return [s.PointXY(p.x, p.y) for p in response.points]


def skill_result(outcome: Outcome, reference: str) -> s.SkillResult:
    call = outcome.call
    if outcome.failure is not None:
        f = outcome.failure
        return s.SkillResult(skill=call.skill, request_id=f.request_id, reference=reference, status=f.status,
                             error=ErrorDetail(code=f.code, message=f.message, request_id=f.request_id))
    r = outcome.response
    assert r is not None
    result = s.SkillResult(skill=call.skill, reference=reference, status=200, **served(r))
    if call.skill == "caption":
        result.caption = r.text
    elif call.skill == "query":
        result.answer = r.text
    elif call.skill == "detect":
        result.objects = boxes(r)
    else:
        result.points = points(r)
    return result


async def _stream_or_run(skills: SkillService, principal: Principal, call: SkillCall, stream: bool) -> Any:
    """A `Stream` of Moondream's server-sent events when asked to stream, else the unary SkillResponse."""
    if stream:
        started = time.perf_counter()
        chunks = await skills.stream(to_caller(principal), call)
        return Stream(moondream_events(chunks, call.request_id, started), media_type="text/event-stream",
                      headers=SSE_HEADERS)
    return await skills.run(to_caller(principal), call)


@post("/v1/caption", operation_id="caption", summary="Caption an image (Moondream-compatible)", tags=["skills"],
      status_code=200, guards=APP, security=SECURITY, responses=BACKEND_ERRORS,
      operation_class=upload_operation("/v1/caption", MoondreamStream), description=f"{DESCRIPTION} {SSE_DESCRIPTION}")
async def caption(request: Request[Any, Any, Any], principal: Principal, skills: SkillService,
                  data: s.CaptionRequest, idempotency_key: IdempotencyKeyHeader = None) -> Response[s.CaptionResponse]:
    call = SkillCall("caption", ensure_request_id(request.scope), model_reference(data.model),
                     image=await image_bytes_async(data.image_url, body("image_url")), length=data.length,
                     max_tokens=s.max_tokens(data.settings))
    result = await _stream_or_run(skills, principal, call, data.stream)
    if isinstance(result, Stream):
        return result  # type: ignore[return-value]  # SSE, documented by MoondreamStream
    return Response(s.CaptionResponse(caption=result.text, **served(result)))


@post("/v1/query", operation_id="query", summary="Answer a question about an image (Moondream-compatible)",
      tags=["skills"], status_code=200, guards=APP, security=SECURITY, responses=BACKEND_ERRORS,
      operation_class=upload_operation("/v1/query", MoondreamStream), description=f"{DESCRIPTION} {SSE_DESCRIPTION}")
async def query(request: Request[Any, Any, Any], principal: Principal, skills: SkillService,
                data: s.QueryRequest, idempotency_key: IdempotencyKeyHeader = None) -> Response[s.QueryResponse]:
    image = await image_bytes_async(data.image_url, body("image_url"))
    call = SkillCall("query", ensure_request_id(request.scope), model_reference(data.model), image=image,
                     question=question_text(data.question), max_tokens=s.max_tokens(data.settings))
    result = await _stream_or_run(skills, principal, call, data.stream)
    if isinstance(result, Stream):
        return result  # type: ignore[return-value]  # SSE, documented by MoondreamStream
    return Response(s.QueryResponse(answer=result.text, **served(result)))


@post("/v1/detect", operation_id="detect", summary="Bounding boxes of an object in an image (Moondream-compatible)",
      tags=["skills"], status_code=200, guards=APP, security=SECURITY, responses=BACKEND_ERRORS,
      operation_class=upload_operation("/v1/detect"),
      description=f"{DESCRIPTION} Boxes are normalised to [0, 1] (origin top-left).")
async def detect(request: Request[Any, Any, Any], principal: Principal, skills: SkillService,
                 data: s.DetectRequest, idempotency_key: IdempotencyKeyHeader = None) -> s.DetectResponse:
    image = await image_bytes_async(data.image_url, body("image_url"))
    call = SkillCall("detect", ensure_request_id(request.scope), model_reference(data.model), image=image,
                     object=object_text(data.object), max_objects=s.max_objects(data.settings))
    result = await skills.run(to_caller(principal), call)
    return s.DetectResponse(objects=boxes(result), **served(result))


@post("/v1/point", operation_id="point", summary="Centre points of an object in an image (Moondream-compatible)",
      tags=["skills"], status_code=200, guards=APP, security=SECURITY, responses=BACKEND_ERRORS,
      operation_class=upload_operation("/v1/point"),
      description=f"{DESCRIPTION} Points are normalised to [0, 1] (origin top-left).")
async def point(request: Request[Any, Any, Any], principal: Principal, skills: SkillService,
                data: s.PointRequest, idempotency_key: IdempotencyKeyHeader = None) -> s.PointResponse:
    image = await image_bytes_async(data.image_url, body("image_url"))
    call = SkillCall("point", ensure_request_id(request.scope), model_reference(data.model), image=image,
                     object=object_text(data.object), max_objects=s.max_objects(data.settings))
    result = await skills.run(to_caller(principal), call)
    return s.PointResponse(points=points(result), **served(result))


def _call_of(skill: str, request_id: str, model: str | None, image: bytes, length: str, question: str | None,
             obj: str | None, prefix: str = "") -> SkillCall:
    """A checked SkillCall from the flat compare/batch fields; the field of a problem is named with `prefix`."""
    if skill == "query":
        return SkillCall("query", request_id, model_reference(model), image=image,
                         question=question_text(question, body(f"{prefix}question")))
    if skill in ("detect", "point"):
        return SkillCall(skill, request_id, model_reference(model), image=image,  # type: ignore[arg-type]
                         object=object_text(obj, body(f"{prefix}object")))
    return SkillCall("caption", request_id, model_reference(model), image=image, length=length)


@post("/v1/compare", operation_id="compare", tags=["skills"], status_code=200, guards=APP, security=SECURITY,
      responses=BACKEND_ERRORS, summary="Run one call on several models or versions, side by side (A/B)",
      description=f"{LIMITS_TEXT} Up to {MAX_COMPARE_MODELS} models. Each result has its own `request_id` "
                  f"(`<request id>.<index>`), so each output can be rated; a model that fails gives a result "
                  f"with `status` and `error` while the others still answer. Input errors (image, missing "
                  f"question/object) are a 400 for the whole request.")
async def compare(request: Request[Any, Any, Any], principal: Principal, skills: SkillService,
                  data: s.CompareRequest, idempotency_key: IdempotencyKeyHeader = None) -> s.CompareResponse:
    request_id = ensure_request_id(request.scope)
    image = await image_bytes_async(data.image_url, body("image_url"))
    calls = [_call_of(data.skill, f"{request_id}.{i}", model, image, data.length, data.question, data.object)
             for i, model in enumerate(data.models)]
    outcomes = await skills.run_many(to_caller(principal), calls)
    return s.CompareResponse(request_id=request_id, skill=data.skill,
                             results=[skill_result(o, c.model) for o, c in zip(outcomes, calls, strict=True)])


@post("/v1/batch", operation_id="batch", tags=["skills"], status_code=200, guards=APP, security=SECURITY,
      responses=BACKEND_ERRORS, summary=f"Run up to {MAX_BATCH_CALLS} skill calls at once",
      description=f"{LIMITS_TEXT} At most {MAX_BATCH_CALLS} calls (400 above; the body is also bounded by the "
                  f"gateway's body limit, 413 above it). Each result has its own `request_id` "
                  f"(`<request id>.<index>`); a call that fails gives a result with `status` and `error` while "
                  f"the others still answer. Input errors are a 400 naming the call, e.g. `requests[2].object`.")
async def batch(request: Request[Any, Any, Any], principal: Principal, skills: SkillService,
                data: s.BatchRequest, idempotency_key: IdempotencyKeyHeader = None) -> s.BatchResponse:
    request_id = ensure_request_id(request.scope)
    checked = await asyncio.gather(*(image_bytes_async(c.image_url, body(f"requests[{i}].image_url"))
                                     for i, c in enumerate(data.requests)), return_exceptions=True)
    for item in checked:  # the first bad image by position, whichever finished first
        if isinstance(item, BaseException):
            raise item
    images = [item for item in checked if isinstance(item, bytes)]
    calls = [_call_of(c.skill, f"{request_id}.{i}", c.model, image, c.length, c.question, c.object, f"requests[{i}].")
             for i, (c, image) in enumerate(zip(data.requests, images, strict=True))]
    outcomes = await skills.run_many(to_caller(principal), calls)
    return s.BatchResponse(request_id=request_id,
                           results=[skill_result(o, c.model) for o, c in zip(outcomes, calls, strict=True)])


SKILL_ROUTES = [caption, query, detect, point, compare, batch]
