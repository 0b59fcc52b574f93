"""Checks every skill request before any model work, with messages that say what to fix.

The inference service never trusts its callers (the gateway validates too, but other
services and tools call inference directly): the caller's tenant, the request id that
event ids derive from, the skill's text argument and the image (decoded and bounded by
`dreamforge.images`) are all checked here and turned into one `Prepared` request.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass, field

from dreamforge.grpcio import InvalidArgument
from dreamforge.images import DecodedImage, ImageError, decode_image
from dreamforge.limits import MAX_TOKENS
from dreamforge.v1 import common_pb2, inference_pb2
from dreamforge.world import CAPTION_LENGTHS
from services.inference.runtime.base import Skill

MAX_QUESTION_CHARS = 2000
MAX_OBJECT_CHARS = 200
#: Event ids are `<request_id>:completed` in 100-character columns.
MAX_REQUEST_ID_CHARS = 90
CHAT_ROLES = ("system", "user", "assistant")
_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]+$")


@dataclass(frozen=True)
class Limits:
    max_image_bytes: int
    max_image_pixels: int


@dataclass(frozen=True)
class Prepared:
    """A checked request: everything the service needs, nothing left to validate."""

    skill: Skill
    caller: common_pb2.Caller
    request_id: str
    reference: str
    text: str                  # caption length, question, object or the chat's last user message
    image: DecodedImage
    max_new_tokens: int | None = None
    max_objects: int = 0       # detect/point: answer at most this many (0 = all)
    image_bytes: bytes = field(default=b"", repr=False)  # as sent: kept in the image store under image.sha256


def caption(request: inference_pb2.CaptionRequest, limits: Limits) -> Prepared:
    length = request.length.strip().lower() or "normal"
    if length not in CAPTION_LENGTHS:
        raise InvalidArgument(f"length {request.length!r} is not a caption length: use one of "
                              f"{', '.join(CAPTION_LENGTHS)} (default normal)")
    return _prepared("caption", request, length, request.image.data, limits,
                     max_new_tokens=_max_tokens(request.max_tokens))


def query(request: inference_pb2.QueryRequest, limits: Limits) -> Prepared:
    question = _text("question", request.question, MAX_QUESTION_CHARS, "e.g. 'how many shapes are there?'")
    return _prepared("query", request, question, request.image.data, limits,
                     max_new_tokens=_max_tokens(request.max_tokens))


def detect(request: inference_pb2.DetectRequest, limits: Limits) -> Prepared:
    obj = _text("object", request.object, MAX_OBJECT_CHARS, "name what to find, e.g. 'red circle'")
    return _prepared("detect", request, obj, request.image.data, limits, max_objects=_max_objects(request.max_objects))


def point(request: inference_pb2.PointRequest, limits: Limits) -> Prepared:
    obj = _text("object", request.object, MAX_OBJECT_CHARS, "name what to point at, e.g. 'red circle'")
    return _prepared("point", request, obj, request.image.data, limits, max_objects=_max_objects(request.max_objects))


def chat(request: inference_pb2.ChatRequest, limits: Limits) -> Prepared:
    """The model answers the last user message about the conversation's first image."""
    if not request.messages:
        raise InvalidArgument("messages is empty: send at least one user message with an image")
    for i, message in enumerate(request.messages):
        if message.role not in CHAT_ROLES:
            raise InvalidArgument(f"messages[{i}].role {message.role!r} must be one of {', '.join(CHAT_ROLES)}")
    users = [m for m in request.messages if m.role == "user"]
    if not users:
        raise InvalidArgument("messages has no user message: the model answers the last user message")
    text = _text("the last user message's text", users[-1].text, MAX_QUESTION_CHARS, "ask something about the image")
    images = [image for m in request.messages for image in m.images]
    if not images:
        raise InvalidArgument("no image in messages: attach the image to a message (messages[].images)")
    if not math.isfinite(request.temperature) or not 0 <= request.temperature <= 2:
        raise InvalidArgument("temperature must be between 0 and 2 (decoding is greedy: it is accepted and ignored)")
    return _prepared("chat", request, text, images[0].data, limits, max_new_tokens=_max_tokens(request.max_tokens))


def _max_tokens(value: int) -> int | None:
    if not 0 <= value <= MAX_TOKENS:
        raise InvalidArgument(f"max_tokens must be between 1 and {MAX_TOKENS} (0 = the default)")
    return value or None


def _max_objects(value: int) -> int:
    if value < 0:
        raise InvalidArgument("max_objects must be 1 or more (0 = every object found)")
    return value


def _text(field: str, value: str, limit: int, hint: str) -> str:
    text = value.strip()
    if not text:
        raise InvalidArgument(f"{field} is empty: {hint}")
    if len(text) > limit:
        raise InvalidArgument(f"{field} is {len(text)} characters; the limit is {limit}")
    return text


def _prepared(skill: Skill, request: inference_pb2.CaptionRequest | inference_pb2.QueryRequest
              | inference_pb2.DetectRequest | inference_pb2.PointRequest | inference_pb2.ChatRequest,
              text: str, image_data: bytes, limits: Limits, *, max_new_tokens: int | None = None,
              max_objects: int = 0) -> Prepared:
    caller = request.caller
    if not _TENANT.match(caller.tenant_id):
        raise InvalidArgument("caller.tenant_id is required and must match ^[A-Za-z0-9_-]{1,100}$")
    request_id = request.request_id or f"req_{secrets.token_hex(8)}"
    if len(request_id) > MAX_REQUEST_ID_CHARS or not _REQUEST_ID.match(request_id):
        raise InvalidArgument(f"request_id must be 1-{MAX_REQUEST_ID_CHARS} characters of [A-Za-z0-9._:-]")
    if not image_data:
        raise InvalidArgument("image is empty: send the image's bytes (JPEG, PNG or WebP) in image.data")
    try:
        image = decode_image(image_data, max_bytes=limits.max_image_bytes, max_pixels=limits.max_image_pixels)
    except ImageError as exc:
        raise InvalidArgument(str(exc)) from None
    return Prepared(skill=skill, caller=caller, request_id=request_id, reference=request.model.reference.strip(),
                    text=text, image=image, max_new_tokens=max_new_tokens, max_objects=max_objects,
                    image_bytes=image_data)
