"""OpenAI-compatible chat completion bodies (`POST /v1/chat/completions`).

The subset a vision-language model needs, in OpenAI's shapes so the official `openai`
client works unchanged: messages whose `content` is a string or a list of `text` and
`image_url` parts (images as data URLs or base64), `model`, `max_tokens` /
`max_completion_tokens`, `temperature`, `stream` (+ `stream_options.include_usage`).
Other OpenAI fields are accepted and ignored; `n` > 1 and tool/function calling are a 400.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from services.gateway.skills import (
    EXAMPLE_IMAGE,
    LIMITS_TEXT,
    MAX_CHAT_IMAGES,
    MAX_CHAT_MESSAGES,
    MAX_CHAT_TEXT_CHARS,
    MAX_MODEL_CHARS,
    MAX_TOKENS,
)


class ImageUrl(msgspec.Struct):
    url: Annotated[str, msgspec.Meta(description=f"A data URL or base64 image. {LIMITS_TEXT}",
                                     examples=[EXAMPLE_IMAGE])]
    detail: str | None = None


class TextPart(msgspec.Struct, tag="text", tag_field="type"):
    text: Annotated[str, msgspec.Meta(max_length=MAX_CHAT_TEXT_CHARS)]


class ImagePart(msgspec.Struct, tag="image_url", tag_field="type"):
    image_url: ImageUrl


ContentPart = TextPart | ImagePart


class ChatMessage(msgspec.Struct):
    role: Annotated[Literal["system", "developer", "user", "assistant"], msgspec.Meta(
        description="`developer` is treated as `system`; tool messages are not supported")]
    content: Annotated[str | list[ContentPart] | None, msgspec.Meta(
        description=f"Text, or a list of `text` and `image_url` parts; at most {MAX_CHAT_TEXT_CHARS} characters of "
                    f"text per message and {MAX_CHAT_IMAGES} images over all messages")] = None
    name: str | None = None


class StreamOptions(msgspec.Struct):
    include_usage: bool = False


class ChatCompletionRequest(msgspec.Struct):
    model: Annotated[str, msgspec.Meta(
        min_length=1, max_length=MAX_MODEL_CHARS,
        description='A model reference (`name`, `name@3`, `name@alias`, a preview) or `"default"` for the '
                    "tenant's production model")]
    messages: Annotated[list[ChatMessage], msgspec.Meta(min_length=1, max_length=MAX_CHAT_MESSAGES)]
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKENS)] | None = None
    max_completion_tokens: Annotated[int, msgspec.Meta(
        ge=1, le=MAX_TOKENS, description="Preferred over `max_tokens` when both are sent")] | None = None
    temperature: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Annotated[int, msgspec.Meta(ge=1, le=1, description="Only 1 is supported")] | None = None
    tools: list[Any] | None = None


class AssistantMessage(msgspec.Struct):
    role: str
    content: str
    refusal: None = None


class Choice(msgspec.Struct):
    index: int
    message: AssistantMessage
    finish_reason: Annotated[str, msgspec.Meta(description="`stop`, or `length` when `max_tokens` ran out")]
    logprobs: None = None


class Usage(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ServedBy(msgspec.Struct):
    model: str
    version: int
    alias: str
    latency_ms: float


class ChatCompletion(msgspec.Struct):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: Annotated[str, msgspec.Meta(description="The model reference of the request")]
    choices: list[Choice]
    usage: Usage
    request_id: Annotated[str, msgspec.Meta(description="Also the `X-Request-Id` header; rate the output with it")]
    dreamforge: Annotated[ServedBy, msgspec.Meta(description="The model and version that answered")]
    system_fingerprint: str | None = None
