"""The one path from any public surface to the inference service.

Every skill call — DreamForge/Moondream REST (`/v1/caption|query|detect|point`), the
fan-out and batch forms (`/v1/compare`, `/v1/batch`), OpenAI chat (`/v1/chat/completions`)
and the public gRPC front — is a `SkillCall`. Controllers parse and authorise; this module
checks what the gateway can check without a model (images, text lengths: a 400 that names
the field, before anything reaches inference), builds the gRPC request with the caller's
`Caller` and a request id, calls `InferenceService` with a deadline, and turns a failed
call into a `SkillFailure` where one call of many fails (gRPC errors otherwise propagate
and `errors.py` maps them: INVALID_ARGUMENT→400, NOT_FOUND→404, UNAVAILABLE→503, ...).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import grpc

from dreamforge.grpcio import InvalidArgument, ServiceError
from dreamforge.images import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    ImageError,
    bytes_from_data_url_or_base64,
    decode_image,
    header_pixels,
)
from dreamforge.limits import MAX_TOKENS
from dreamforge.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from services.gateway.errors import http_failure

Skill = Literal["caption", "query", "detect", "point", "chat"]
SKILLS: tuple[Skill, ...] = ("caption", "query", "detect", "point", "chat")
CaptionLength = Literal["short", "normal", "long"]

# -- limits (documented in the OpenAPI descriptions and services/gateway/README.md) -----------
#: An image's encoded bytes and decoded pixels (from dreamforge.images).
IMAGE_MAX_BYTES = MAX_IMAGE_BYTES
IMAGE_MAX_PIXELS = MAX_IMAGE_PIXELS
#: Images checked on the event loop rather than in a worker thread: decoding one this small takes a
#: few tenths of a millisecond, less than the hop to a thread and back (see `image_bytes_async`).
INLINE_CHECK_PIXELS = 128 * 128
INLINE_CHECK_CHARS = 64 * 1024
#: A query's question, in characters.
MAX_QUESTION_CHARS = 2000
#: A detect/point object name, in characters.
MAX_OBJECT_CHARS = 200
#: A model reference (`name`, `name@3`, `name@alias`, a preview, `default`).
MAX_MODEL_CHARS = 300
#: Calls in one `POST /v1/batch`.
MAX_BATCH_CALLS = 16
#: Models (versions) in one `POST /v1/compare`.
MAX_COMPARE_MODELS = 8
#: Chat: messages, images over all messages, characters of one message's text (tokens: `MAX_TOKENS`).
MAX_CHAT_MESSAGES = 32
MAX_CHAT_IMAGES = 4
MAX_CHAT_TEXT_CHARS = 8000

DEFAULT_MODEL = "default"
LIMITS_TEXT = (
    f"Images: JPEG, PNG or WebP as a data URL (`data:image/png;base64,...`) or plain base64, at most "
    f"{IMAGE_MAX_BYTES // (1024 * 1024)} MiB encoded and {IMAGE_MAX_PIXELS:,} pixels; image URLs are not fetched."
)

#: An 8x8 red PNG: the documented example of every image field (so "try it out" and schema-driven tests can call).
EXAMPLE_IMAGE = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR42mP8z4AdMDEMKQkAzUEBD7"
                 "t4NqoAAAAASUVORK5CYII=")

_CHECKPOINT = re.compile(r"^[^/@\s]+/(?P<finetune>ft-[0-9a-f]{16})@(?P<step>\d{1,9})$")


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


@dataclass(frozen=True)
class ChatTurn:
    role: str                      # system | user | assistant
    text: str
    images: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class SkillCall:
    """One call of one skill on one model, already checked (images decoded once, texts bounded)."""

    skill: Skill
    request_id: str
    model: str = DEFAULT_MODEL     # a model reference; "default" = the tenant's production (or the built-in model)
    image: bytes = b""
    length: str = "normal"         # caption
    question: str = ""             # query
    object: str = ""               # detect, point
    messages: tuple[ChatTurn, ...] = ()  # chat
    max_tokens: int = 0            # caption, query, chat (0 = the model's default)
    temperature: float = 0.0       # chat
    max_objects: int = 0           # detect, point (0 = every one found)


@dataclass(frozen=True)
class SkillFailure:
    """A call of a fan-out or batch that failed, as the HTTP error it would have been alone."""

    request_id: str
    status: int
    code: str
    message: str
    grpc_code: grpc.StatusCode  # what the gRPC front reports


@dataclass
class Outcome:
    """What `run_many` returns for each call, in order."""

    call: SkillCall
    response: inference_pb2.SkillResponse | None = None
    failure: SkillFailure | None = None


# -- checks -------------------------------------------------------------------------------------
# Each check takes the label of the field it checks, as the caller spelled it: `body("image_url")`
# for REST, `message("image.data")` for the gRPC front.

def body(name: str) -> str:
    return f"body field `{name}`"


def message(name: str) -> str:
    return f"request field `{name}`"


def model_reference(value: str | None) -> str:
    """What `model` names; absent, empty or "default" = the tenant's production model.

    A tuning checkpoint as Moondream's client names it, `<base>/<finetune_id>@<step>`, is the
    finetune's registry model at its `step-<step>` preview (see services/trainer/tuning.py)."""
    text = (value or "").strip()
    checkpoint = _CHECKPOINT.match(text)
    if checkpoint:
        return f"{checkpoint['finetune']}@step-{checkpoint['step']}"
    return text or DEFAULT_MODEL


def check_image_bytes(data: bytes, label: str) -> bytes:
    """`data` when it is a decodable JPEG/PNG/WebP within the limits; InvalidArgument naming the field otherwise."""
    if not data:
        raise InvalidArgument(f"{label} is required: send a JPEG, PNG or WebP image")
    try:
        decode_image(data)
    except ImageError as exc:
        raise InvalidArgument(f"{label}: {exc}") from None
    return data


def image_bytes(value: str | None, label: str) -> bytes:
    """Bytes of a data URL or base64 image, checked (see `check_image_bytes`)."""
    if value is None or not value.strip():
        raise InvalidArgument(f"{label} is required: send the image as a data URL "
                              f"(data:image/png;base64,...) or base64 of a JPEG, PNG or WebP file")
    try:
        data = bytes_from_data_url_or_base64(value)
    except ImageError as exc:
        raise InvalidArgument(f"{label}: {exc}") from None
    return check_image_bytes(data, label)


async def image_bytes_async(value: str | None, label: str) -> bytes:
    """`image_bytes`, off the event loop unless the image is small.

    Decoding a large image takes tens of milliseconds, so it runs in a worker thread. One of at
    most `INLINE_CHECK_PIXELS` (by its header) in at most `INLINE_CHECK_CHARS` of text is checked
    here: the thread hop alone cost 0.4 ms on an idle process, more than the decode, and more under
    load. Anything that fails before decoding fails here too, as cheaply."""
    if value is None or not value.strip():
        return image_bytes(value, label)  # the 400 saying the field is required
    if len(value) > INLINE_CHECK_CHARS:
        return await asyncio.to_thread(image_bytes, value, label)
    try:
        data = bytes_from_data_url_or_base64(value)
    except ImageError:
        return image_bytes(value, label)  # raises the same 400 the thread would
    pixels = header_pixels(data)
    if pixels is not None and pixels > INLINE_CHECK_PIXELS:
        return await asyncio.to_thread(check_image_bytes, data, label)
    return check_image_bytes(data, label)


def required_text(value: str | None, label: str, limit: int, what: str) -> str:
    """A non-blank text of at most `limit` characters, stripped."""
    text = (value or "").strip()
    if not text:
        raise InvalidArgument(f"{label} is required and must not be blank: {what}")
    if len(text) > limit:
        raise InvalidArgument(f"{label} is {len(text)} characters; the limit is {limit}")
    return text


def question_text(value: str | None, label: str = body("question")) -> str:
    return required_text(value, label, MAX_QUESTION_CHARS, "ask a question about the image")


def object_text(value: str | None, label: str = body("object")) -> str:
    return required_text(value, label, MAX_OBJECT_CHARS, 'name the object to find, e.g. "red circle"')


def caption_length(value: str | None, label: str = body("length")) -> str:
    length = (value or "normal").strip() or "normal"
    if length not in ("short", "normal", "long"):
        raise InvalidArgument(f"{label} must be one of short, normal, long (got {length!r})")
    return length


def check_model(value: str, label: str) -> str:
    reference = model_reference(value)
    if len(reference) > MAX_MODEL_CHARS:
        raise InvalidArgument(f"{label} is {len(reference)} characters; the limit is {MAX_MODEL_CHARS}")
    return reference


def check_turns(turns: Sequence[ChatTurn], label: str, max_tokens: int = 0, temperature: float = 0.0) -> None:
    """Chat limits (the REST schema checks them as it parses; the gRPC front calls this)."""
    if not 1 <= len(turns) <= MAX_CHAT_MESSAGES:
        raise InvalidArgument(f"{label}: send 1-{MAX_CHAT_MESSAGES} messages (got {len(turns)})")
    if sum(len(t.images) for t in turns) > MAX_CHAT_IMAGES:
        raise InvalidArgument(f"{label}: at most {MAX_CHAT_IMAGES} images per request")
    for i, turn in enumerate(turns):
        if turn.role not in ("system", "user", "assistant"):
            raise InvalidArgument(f"{label}[{i}].role must be system, user or assistant (got {turn.role!r})")
        if len(turn.text) > MAX_CHAT_TEXT_CHARS:
            raise InvalidArgument(f"{label}[{i}].text is {len(turn.text)} characters; the limit is "
                                  f"{MAX_CHAT_TEXT_CHARS}")
        if turn.images and turn.role != "user":
            raise InvalidArgument(f"{label}[{i}]: only user messages may carry images")
    if not any(t.role == "user" and (t.text.strip() or t.images) for t in turns):
        raise InvalidArgument(f"{label}: needs a user message with text and/or an image")
    check_max_tokens(max_tokens, "max_tokens")
    if not 0.0 <= temperature <= 2.0:
        raise InvalidArgument(f"temperature must be 0-2, got {temperature}")


def call_from_message(skill: Skill, request: Any, request_id: str, prefix: str = "") -> SkillCall:
    """A checked SkillCall from an InferenceService request message (the gRPC front), fields named as in
    proto; `prefix` is the path of the message inside a batch, e.g. `calls[2].detect.`."""
    def field(name: str) -> str:
        return message(prefix + name)

    model = check_model(request.model.reference, field("model.reference"))
    if skill == "chat":
        turns = tuple(ChatTurn(role=m.role, text=m.text,
                               images=tuple(check_image_bytes(img.data, field(f"messages[{i}].images[{j}].data"))
                                            for j, img in enumerate(m.images)))
                      for i, m in enumerate(request.messages))
        check_turns(turns, field("messages"), request.max_tokens, request.temperature)
        return SkillCall("chat", request_id, model, messages=turns, max_tokens=request.max_tokens,
                         temperature=request.temperature)
    image = check_image_bytes(request.image.data, field("image.data"))
    if skill == "caption":
        return SkillCall("caption", request_id, model, image=image, length=caption_length(request.length,
                                                                                         field("length")),
                         max_tokens=check_max_tokens(request.max_tokens, field("max_tokens")))
    if skill == "query":
        return SkillCall("query", request_id, model, image=image, question=question_text(request.question,
                                                                                        field("question")),
                         max_tokens=check_max_tokens(request.max_tokens, field("max_tokens")))
    if request.max_objects < 0:
        raise InvalidArgument(f"{field('max_objects')} must be 1 or more (0 = every object found)")
    return SkillCall(skill, request_id, model, image=image, object=object_text(request.object, field("object")),
                     max_objects=request.max_objects)


def check_max_tokens(value: int, label: str) -> int:
    if not 0 <= value <= MAX_TOKENS:
        raise InvalidArgument(f"{label} must be 1-{MAX_TOKENS} (or 0 for the default), got {value}")
    return value


# -- gRPC -------------------------------------------------------------------------------------

def _target(call: SkillCall) -> inference_pb2.Target:
    return inference_pb2.Target(reference=call.model)


def build_request(call: SkillCall, caller: common_pb2.Caller) -> Any:
    """The InferenceService request message of `call`."""
    common: dict[str, Any] = {"caller": caller, "request_id": call.request_id, "model": _target(call)}
    image = inference_pb2.Image(data=call.image)
    if call.skill == "caption":
        return inference_pb2.CaptionRequest(**common, image=image, length=call.length, max_tokens=call.max_tokens)
    if call.skill == "query":
        return inference_pb2.QueryRequest(**common, image=image, question=call.question, max_tokens=call.max_tokens)
    if call.skill == "detect":
        return inference_pb2.DetectRequest(**common, image=image, object=call.object, max_objects=call.max_objects)
    if call.skill == "point":
        return inference_pb2.PointRequest(**common, image=image, object=call.object, max_objects=call.max_objects)
    return inference_pb2.ChatRequest(
        **common, max_tokens=call.max_tokens, temperature=call.temperature,
        messages=[inference_pb2.ChatMessage(role=m.role, text=m.text,
                                            images=[inference_pb2.Image(data=i) for i in m.images])
                  for m in call.messages])


def stream_request(call: SkillCall, caller: common_pb2.Caller) -> inference_pb2.StreamRequest:
    if call.skill not in ("caption", "query", "chat"):
        raise InvalidArgument(f"{call.skill} cannot stream: only caption, query and chat do")
    return inference_pb2.StreamRequest(**{call.skill: build_request(call, caller)})


def failure_of(request_id: str, exc: Exception) -> SkillFailure:
    """The HTTP status, code and message `errors.py` would answer for `exc`."""
    if isinstance(exc, grpc.aio.AioRpcError):
        code, message = exc.code(), exc.details() or exc.code().name
    elif isinstance(exc, ServiceError):
        code, message = exc.code, str(exc)
    else:
        raise exc
    return SkillFailure(request_id, *http_failure(code, message), grpc_code=code)


class QuotaCheck(Protocol):
    """The billing quota every call passes before it reaches inference (`billing_client.QuotaGate`)."""

    async def admit(self, caller: common_pb2.Caller, skill: str, images: int = 1) -> None: ...


def images_of(call: SkillCall) -> int:
    return max(1, sum(len(m.images) for m in call.messages)) if call.skill == "chat" else 1


class SkillService:
    """Calls `InferenceService` for an authenticated caller; the only code that does."""

    def __init__(self, stub: inference_pb2_grpc.InferenceServiceStub | None, timeout_s: float = 30.0,
                 quota: QuotaCheck | None = None) -> None:
        self.stub = stub
        self.timeout_s = timeout_s
        self.quota = quota

    async def _admit(self, caller: common_pb2.Caller, call: SkillCall) -> inference_pb2_grpc.InferenceServiceStub:
        """The inference stub, once the tenant's plan allows this call (QuotaExceeded otherwise)."""
        stub = self._stub()
        if self.quota is not None:
            await self.quota.admit(caller, call.skill, images_of(call))
        return stub

    def _stub(self) -> inference_pb2_grpc.InferenceServiceStub:
        if self.stub is None:  # a gateway built without an inference address (some tests)
            raise Unavailable("no inference service is configured on this gateway")
        return self.stub

    async def run(self, caller: common_pb2.Caller, call: SkillCall) -> inference_pb2.SkillResponse:
        """One unary call; gRPC errors propagate."""
        stub = await self._admit(caller, call)
        method = {"caption": stub.Caption, "query": stub.Query, "detect": stub.Detect, "point": stub.Point,
                  "chat": stub.Chat}[call.skill]
        response: inference_pb2.SkillResponse = await method(build_request(call, caller), timeout=self.timeout_s)
        if not response.request_id:
            response.request_id = call.request_id
        return response

    async def run_many(self, caller: common_pb2.Caller, calls: Sequence[SkillCall]) -> list[Outcome]:
        """Every call at once; a failed call is a `SkillFailure` in its place, the others still answer."""

        async def one(call: SkillCall) -> Outcome:
            try:
                return Outcome(call, response=await self.run(caller, call))
            except (grpc.aio.AioRpcError, ServiceError) as exc:
                return Outcome(call, failure=failure_of(call.request_id, exc))

        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def stream(self, caller: common_pb2.Caller, call: SkillCall) -> AsyncIterator[inference_pb2.TextChunk]:
        """The generated text in chunks, ending with the `completed` chunk (its `final` set).

        The first chunk is awaited here, so a call that fails at once (bad model, bad input)
        raises before the caller starts its response; later failures raise from the iterator.
        Closing the iterator early cancels the inference stream.
        """
        request = stream_request(call, caller)
        rpc = (await self._admit(caller, call)).Stream(request, timeout=self.timeout_s)
        chunks = rpc.__aiter__()
        try:
            first: inference_pb2.TextChunk | None = await anext(chunks)
        except StopAsyncIteration:
            first = None
        except BaseException:
            rpc.cancel()
            raise

        async def rest() -> AsyncIterator[inference_pb2.TextChunk]:
            try:
                if first is None:
                    return
                yield first
                if first.completed:
                    return
                async for chunk in chunks:
                    yield chunk
                    if chunk.completed:
                        return
            finally:
                rpc.cancel()

        return rest()
