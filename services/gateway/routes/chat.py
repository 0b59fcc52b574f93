"""`POST /v1/chat/completions` (scope `app`): OpenAI's chat completion API over the inference
service's Chat and Stream RPCs, so `OpenAI(base_url="http://<gateway>/v1", api_key=...)` works."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from litestar import Request, Response, post
from litestar.response import Stream

from dreamforge.grpcio import InvalidArgument
from dreamforge.v1 import inference_pb2
from services.gateway.auth import to_caller
from services.gateway.idempotency import IdempotencyKeyHeader
from services.gateway.keys import Principal
from services.gateway.request_ids import ensure_request_id
from services.gateway.routes.admin import SECURITY
from services.gateway.routes.skills import APP, BACKEND_ERRORS, streaming_operation
from services.gateway.schemas import chat as c
from services.gateway.skills import (
    LIMITS_TEXT,
    MAX_CHAT_IMAGES,
    ChatTurn,
    SkillCall,
    SkillService,
    body,
    image_bytes,
    model_reference,
)
from services.gateway.sse import OPENAI_EVENTS, SSE_HEADERS, openai_events

CHAT_DESCRIPTION = (
    f"OpenAI-compatible. {LIMITS_TEXT} At most {MAX_CHAT_IMAGES} images per request. With `\"stream\": true`: "
    "`text/event-stream` of `chat.completion.chunk` objects (`data: {...}` lines), ending with `data: [DONE]`; "
    "`stream_options.include_usage` adds a last chunk with `usage`.")


def _turns(messages: list[c.ChatMessage]) -> tuple[ChatTurn, ...]:
    """Chat turns with their images checked; a problem names its field, e.g. `messages[1].content[0].image_url`."""
    turns: list[ChatTurn] = []
    images_seen = 0
    for i, message in enumerate(messages):
        role = "system" if message.role == "developer" else message.role
        texts: list[str] = []
        images: list[bytes] = []
        if isinstance(message.content, str):
            texts.append(message.content)
        else:
            for j, part in enumerate(message.content or []):
                if isinstance(part, c.TextPart):
                    texts.append(part.text)
                    continue
                images_seen += 1
                if images_seen > MAX_CHAT_IMAGES:
                    raise InvalidArgument(f"body field `messages[{i}].content[{j}]`: at most {MAX_CHAT_IMAGES} "
                                          f"images per request")
                if role != "user":
                    raise InvalidArgument(f"body field `messages[{i}].content[{j}]`: only user messages may "
                                          f"carry images")
                images.append(image_bytes(part.image_url.url, body(f"messages[{i}].content[{j}].image_url.url")))
        turns.append(ChatTurn(role=role, text="\n".join(texts), images=tuple(images)))
    if not any(t.role == "user" for t in turns):
        raise InvalidArgument("body field `messages`: needs at least one user message")
    if not any(t.text.strip() or t.images for t in turns if t.role == "user"):
        raise InvalidArgument("body field `messages`: the user messages are empty: send text and/or an image")
    return tuple(turns)


def _finish_reason(max_tokens: int) -> Any:
    def finish(final: inference_pb2.SkillResponse) -> str:
        return "length" if max_tokens and final.output_tokens >= max_tokens else "stop"

    return finish


@post("/v1/chat/completions", operation_id="createChatCompletion", tags=["skills"], status_code=200,
      guards=APP, security=SECURITY, responses=BACKEND_ERRORS, operation_class=streaming_operation(OPENAI_EVENTS),
      summary="Chat about images (OpenAI-compatible)", description=CHAT_DESCRIPTION)
async def chat_completions(request: Request[Any, Any, Any], principal: Principal, skills: SkillService,
                           data: c.ChatCompletionRequest,
                           idempotency_key: IdempotencyKeyHeader = None) -> Response[c.ChatCompletion]:
    if data.tools:
        raise InvalidArgument("body field `tools`: tool calling is not supported")
    request_id = ensure_request_id(request.scope)
    max_tokens = data.max_completion_tokens or data.max_tokens or 0
    turns = await asyncio.to_thread(_turns, data.messages)
    call = SkillCall("chat", request_id, model_reference(data.model), messages=turns, max_tokens=max_tokens,
                     temperature=data.temperature or 0.0)
    created = int(time.time())
    finish = _finish_reason(max_tokens)
    if data.stream:
        chunks = await skills.stream(to_caller(principal), call)
        include_usage = bool(data.stream_options and data.stream_options.include_usage)
        return Stream(openai_events(chunks, request_id=request_id, model=data.model, created=created,
                                    include_usage=include_usage, finish_reason=finish),
                      media_type="text/event-stream", headers=SSE_HEADERS)  # type: ignore[return-value]
    r = await skills.run(to_caller(principal), call)
    return Response(c.ChatCompletion(
        id=f"chatcmpl-{request_id}", object="chat.completion", created=created, model=data.model,
        choices=[c.Choice(index=0, message=c.AssistantMessage(role="assistant", content=r.text),
                          finish_reason=finish(r))],
        usage=c.Usage(r.input_tokens, r.output_tokens, r.input_tokens + r.output_tokens),
        request_id=r.request_id or request_id,
        dreamforge=c.ServedBy(model=r.model_id, version=r.version, alias=r.alias, latency_ms=round(r.latency_ms, 3))))
