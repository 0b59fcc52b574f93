"""Server-sent event framing for the streamed skills: Moondream's and OpenAI's wire formats.

Moondream (`/v1/caption`, `/v1/query` with `"stream": true`), as its official client reads it:

    data: {"chunk": "A red", "completed": false}
    data: {"chunk": " circle", "completed": false}
    data: {"completed": true, "request_id": "req_...", "model": ..., "version": ..., ...}

OpenAI (`/v1/chat/completions` with `"stream": true`): `chat.completion.chunk` objects, the
first with `delta.role`, then `delta.content` pieces, then an empty delta with
`finish_reason`, a `usage` chunk when `stream_options.include_usage`, then `data: [DONE]`.

A failure after the stream has started (headers are gone) is sent as
`event: error` + `data: {"error": {"code", "message", "request_id"}}`, and the stream ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import msgspec
from litestar.openapi.spec import OpenAPIType, Schema

from dreamforge.grpcio import ServiceError
from dreamforge.v1 import inference_pb2
from services.gateway.skills import failure_of

log = logging.getLogger("dreamforge.gateway.sse")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_encoder = msgspec.json.Encoder()


async def _close(chunks: AsyncIterator[Any]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()


def frame(data: Any, event: str | None = None) -> bytes:
    """One SSE event: optional `event:` line, one `data:` line of compact JSON, blank line."""
    prefix = f"event: {event}\n".encode() if event else b""
    return prefix + b"data: " + _encoder.encode(data) + b"\n\n"


def error_frame(request_id: str, exc: Exception) -> bytes:
    failure = failure_of(request_id, exc)
    log.warning("stream failed after it started", extra={"request_id": request_id, "status": failure.status,
                                                          "error": failure.message})
    return frame({"error": {"code": failure.code, "message": failure.message, "request_id": request_id}},
                 event="error")


def served(final: inference_pb2.SkillResponse, request_id: str) -> dict[str, Any]:
    """The fields every served output carries (request id, model, version, alias, latency, token counts)."""
    return {"request_id": final.request_id or request_id, "model": final.model_id, "version": final.version,
            "alias": final.alias, "latency_ms": round(final.latency_ms, 3),
            "metrics": {"input_tokens": final.input_tokens, "output_tokens": final.output_tokens}}


async def moondream_events(chunks: AsyncIterator[inference_pb2.TextChunk], request_id: str,
                           started: float) -> AsyncIterator[bytes]:
    """Moondream's SSE stream of a caption or an answer."""
    final: inference_pb2.SkillResponse | None = None
    try:
        async for chunk in chunks:
            if chunk.text:
                yield frame({"chunk": chunk.text, "completed": False})
            if chunk.completed:
                final = chunk.final
                break
    except (grpc.aio.AioRpcError, ServiceError) as exc:
        yield error_frame(request_id, exc)
        return
    finally:  # the client went away (or we are done): cancel the inference stream now
        await _close(chunks)
    if final is None:
        final = inference_pb2.SkillResponse(request_id=request_id, latency_ms=(time.perf_counter() - started) * 1000)
    yield frame({"completed": True, **served(final, request_id)})


def chat_chunk(completion_id: str, created: int, model: str, delta: dict[str, Any],
               finish_reason: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            **(extra or {})}


async def openai_events(chunks: AsyncIterator[inference_pb2.TextChunk], *, request_id: str, model: str,
                        created: int, include_usage: bool,
                        finish_reason: Callable[[inference_pb2.SkillResponse], str]) -> AsyncIterator[bytes]:
    """OpenAI's SSE stream of a chat completion."""
    completion_id = f"chatcmpl-{request_id}"
    extra = {"request_id": request_id}
    if include_usage:
        extra["usage"] = None  # type: ignore[assignment]
    yield frame(chat_chunk(completion_id, created, model, {"role": "assistant", "content": ""}, extra=extra))
    final: inference_pb2.SkillResponse | None = None
    try:
        async for chunk in chunks:
            if chunk.text:
                yield frame(chat_chunk(completion_id, created, model, {"content": chunk.text}, extra=extra))
            if chunk.completed:
                final = chunk.final
                break
    except (grpc.aio.AioRpcError, ServiceError) as exc:
        yield error_frame(request_id, exc)
        yield b"data: [DONE]\n\n"
        return
    finally:
        await _close(chunks)
    final = final if final is not None else inference_pb2.SkillResponse(request_id=request_id)
    yield frame(chat_chunk(completion_id, created, model, {}, finish_reason(final), extra=extra))
    if include_usage:
        usage = {"prompt_tokens": final.input_tokens, "completion_tokens": final.output_tokens,
                 "total_tokens": final.input_tokens + final.output_tokens}
        yield frame({"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                     "system_fingerprint": None, "choices": [], "usage": usage, "request_id": request_id})
    yield b"data: [DONE]\n\n"


# -- the OpenAPI description of the streams (each event as schemathesis and OpenAPI 3.2 see it:
#    `{"event", "data"}`, `data` a JSON document described by `contentSchema`) -------------------

def _obj(required: list[str], **properties: Schema) -> Schema:
    return Schema(type=OpenAPIType.OBJECT, required=required, properties=properties)  # type: ignore[arg-type]


_STRING = Schema(type=OpenAPIType.STRING)
_INTEGER = Schema(type=OpenAPIType.INTEGER)
_NUMBER = Schema(type=OpenAPIType.NUMBER)
_ERROR_EVENT = _obj(["error"], error=_obj(["code", "message", "request_id"], code=_STRING, message=_STRING,
                                          request_id=_STRING))
_METRICS = _obj(["input_tokens", "output_tokens"], input_tokens=_INTEGER, output_tokens=_INTEGER)
_USAGE = _obj(["prompt_tokens", "completion_tokens", "total_tokens"], prompt_tokens=_INTEGER,
              completion_tokens=_INTEGER, total_tokens=_INTEGER)
MOONDREAM_EVENT_PAYLOAD = Schema(one_of=[
    _obj(["chunk", "completed"], chunk=_STRING, completed=Schema(type=OpenAPIType.BOOLEAN, const=False)),
    _obj(["completed", "request_id", "model", "version", "alias", "latency_ms", "metrics"],
         completed=Schema(type=OpenAPIType.BOOLEAN, const=True), request_id=_STRING, model=_STRING,
         version=_INTEGER, alias=_STRING, latency_ms=_NUMBER, metrics=_METRICS),
    _ERROR_EVENT,
])
OPENAI_EVENT_PAYLOAD = Schema(one_of=[
    _obj(["id", "object", "created", "model", "choices"], id=_STRING,
         object=Schema(type=OpenAPIType.STRING, const="chat.completion.chunk"), created=_INTEGER, model=_STRING,
         choices=Schema(type=OpenAPIType.ARRAY, items=_obj(
             ["index", "delta"], index=_INTEGER,
             delta=_obj([], role=_STRING, content=_STRING),
             finish_reason=Schema(type=[OpenAPIType.STRING, OpenAPIType.NULL]))),
         usage=Schema(one_of=[_USAGE, Schema(type=OpenAPIType.NULL)])),
    _ERROR_EVENT,
])


def event_schema(payload: Schema, done_marker: str | None = None) -> Schema:
    """One server-sent event whose `data` is a JSON document matching `payload` (or `done_marker`)."""
    data = Schema(type=OpenAPIType.STRING, content_media_type="application/json", content_schema=payload)
    if done_marker is not None:
        data = Schema(any_of=[Schema(type=OpenAPIType.STRING, const=done_marker), data])
    return _obj(["data"], event=Schema(type=OpenAPIType.STRING, enum=["message", "error"]), data=data)


MOONDREAM_EVENTS = event_schema(MOONDREAM_EVENT_PAYLOAD)
OPENAI_EVENTS = event_schema(OPENAI_EVENT_PAYLOAD, done_marker="[DONE]")
