"""Image files on the skill routes: a multipart form or a raw image body, turned into the JSON body.

`POST /v1/caption|query|detect|point` take Moondream's JSON, with the image as a data URL. A
client that holds a file can send it as it is instead:

    curl -F image=@photo.jpg -F question="How many circles?" -H "Authorization: Bearer $KEY" .../v1/query
    curl --data-binary @photo.jpg -H 'Content-Type: image/jpeg' -H "Authorization: Bearer $KEY" \\
         '.../v1/query?question=How%20many%20circles%3F'

(An urlencoded form works too, with the image as text: a data URL or base64 in `image`.)
`UploadMiddleware` rewrites such a request into the JSON body the route already validates (the
file as base64 in `image_url`, the other form fields or query parameters as they are), so there is
one schema, one set of checks and one set of error messages for every way of sending an image.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import msgspec
from litestar.enums import ScopeType
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.middleware import ASGIMiddleware
from litestar.openapi.spec import OpenAPIMediaType, Operation, Reference, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send
from multipart import MultipartError, MultipartParser, MultipartPart, parse_options_header

from dreamforge.images import MAX_IMAGE_BYTES
from services.gateway.schemas import skills as s

#: The routes that take a file, and the text fields each takes beside it: its JSON body's fields but the
#: image and the nested `settings`.
UPLOAD_FIELDS: dict[str, tuple[str, ...]] = {
    f"/v1/{skill}": tuple(f.name for f in msgspec.structs.fields(body) if f.name not in ("image_url", "settings"))
    for skill, body in (("caption", s.CaptionRequest), ("query", s.QueryRequest), ("detect", s.DetectRequest),
                        ("point", s.PointRequest))
}
#: Text fields a route cannot do without, and what to put in them.
REQUIRED_FIELDS = {"question": "ask a question about the image", "object": 'name the object to find, e.g. "red circle"'}
#: Form bodies: with a file part, or (urlencoded) with the image as text.
FORM_MEDIA_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})
#: Raw bodies taken as an image file.
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "application/octet-stream"})
#: Form fields that may carry the image: a file part, or text (a data URL or base64).
IMAGE_FIELDS = ("image", "image_url")
NO_IMAGE = "the form needs the image in field `image`: a file (`curl -F image=@photo.jpg`), a data URL or base64"
ONE_IMAGE = "send one image: form fields `image` and `image_url` are the same image"
UPLOAD_TEXT = ("Instead of JSON, the image may come as a file: `multipart/form-data` with the file in field "
               "`image` and the other fields as form fields (`curl -F image=@photo.jpg -F ...`), or the raw "
               "file as the body (`Content-Type: image/jpeg`, `image/png`, `image/webp` or "
               "`application/octet-stream`) with the other fields as query parameters.")


def _bad(message: str) -> ClientException:
    return ClientException(detail=message)


def _base64(image: bytes, label: str) -> str:
    """The file as `image_url` text; over the image limit is a 400 naming the field it came in."""
    if len(image) > MAX_IMAGE_BYTES:
        raise _bad(f"{label}: image is {len(image)} bytes; the limit is {MAX_IMAGE_BYTES} bytes "
                   f"({MAX_IMAGE_BYTES // (1024 * 1024)} MiB)")
    return base64.b64encode(image).decode()


def _flag(name: str, value: str) -> bool | str:
    """`stream` as a form field or query parameter: true/false, 1/0, yes/no (anything else fails validation)."""
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off", ""):
        return False
    raise _bad(f"field `{name}` must be true or false (got {value!r})")


def _fields(pairs: list[tuple[str, str]], allowed: tuple[str, ...], where: str) -> dict[str, Any]:
    """The route's text fields from (name, value) pairs; unknown, repeated or missing names are a 400."""
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name not in allowed:
            image = "the request body" if where == "query parameter" else "form field `image`"
            raise _bad(f"unknown {where} `{name}`: the image goes in {image}, and this route takes "
                       f"{', '.join(f'`{a}`' for a in allowed)} beside it")
        if name in out:
            raise _bad(f"{where} `{name}` is sent twice")
        out[name] = _flag(name, value) if name == "stream" else value
    for name in REQUIRED_FIELDS:
        if name in allowed and name not in out:
            raise _bad(f"{where} `{name}` is required: {REQUIRED_FIELDS[name]}")
    return out


def _text(part: MultipartPart, label: str) -> str:
    try:
        return str(part.value)
    except UnicodeDecodeError:
        raise _bad(f"{label} is not UTF-8 text") from None


def _from_form(body: bytes, content_type: str, allowed: tuple[str, ...], limit: int) -> dict[str, Any]:
    _, options = parse_options_header(content_type)
    boundary = options.get("boundary", "")
    if not boundary:
        raise _bad("multipart/form-data without a boundary: let the HTTP client set the Content-Type header")
    image: str | None = None
    texts: list[tuple[str, str]] = []
    try:
        parser = MultipartParser(io.BytesIO(body), boundary, len(body), spool_limit=limit, memory_limit=limit,
                                 part_limit=len(allowed) + 1)
        for part in parser:
            label = f"form field `{part.name}`"
            if part.name in IMAGE_FIELDS:
                if image is not None:
                    raise _bad(ONE_IMAGE)
                is_file = part.filename is not None or not part.content_type.startswith("text/")
                image = _base64(part.raw, label) if is_file else _text(part, label)
            elif part.name in allowed:
                if part.filename is not None:
                    raise _bad(f"{label} must be text, not a file")
                texts.append((part.name, _text(part, label)))
            else:
                texts.append((part.name, ""))  # refused by name in `_fields`, unread
    except MultipartError as exc:
        raise _bad(f"malformed multipart/form-data body: {exc}") from None
    fields = _fields(texts, allowed, "form field")
    if image is None:
        raise _bad(NO_IMAGE)
    return {**fields, "image_url": image}


def _pairs(encoded: bytes, what: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(encoded.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise _bad(f"{what} is not UTF-8") from None


def _from_urlencoded(body: bytes, allowed: tuple[str, ...]) -> dict[str, Any]:
    """A form without a file part: the image as text (a data URL or base64) in `image` or `image_url`."""
    pairs = _pairs(body, "the form")
    images = [value for name, value in pairs if name in IMAGE_FIELDS]
    fields = _fields([(n, v) for n, v in pairs if n not in IMAGE_FIELDS], allowed, "form field")
    if len(images) != 1:
        raise _bad(NO_IMAGE if not images else ONE_IMAGE)
    return {**fields, "image_url": images[0]}


def _from_raw(body: bytes, query: bytes, allowed: tuple[str, ...]) -> dict[str, Any]:
    fields = _fields(_pairs(query, "the query string"), allowed, "query parameter")
    return {**fields, "image_url": _base64(body, "the request body")}


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body (413 beyond `limit`), for a middleware that must see it before the route."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _bad("the client went away while sending the body")
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]  # an http.request here
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge()  # errors.py names the limit
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class UploadMiddleware(ASGIMiddleware):
    """Multipart and raw-image requests to the skill routes, as the JSON body the routes validate."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        allowed = UPLOAD_FIELDS.get(scope["path"]) if scope.get("method") == "POST" else None
        content_type = dict(scope.get("headers", ())).get(b"content-type", b"").decode("latin-1") if allowed else ""
        media_type = content_type.partition(";")[0].strip().lower()
        if allowed is None or media_type not in FORM_MEDIA_TYPES | IMAGE_MEDIA_TYPES:
            await next_app(scope, receive, send)  # JSON, as the route reads it
            return
        body = await read_body(receive, self.max_body_bytes)
        if media_type == "multipart/form-data":
            fields = _from_form(body, content_type, allowed, self.max_body_bytes)
        elif media_type in FORM_MEDIA_TYPES:
            fields = _from_urlencoded(body, allowed)
        else:
            fields = _from_raw(body, scope.get("query_string", b""), allowed)
        encoded = msgspec.json.encode(fields)
        kept = [(k, v) for k, v in scope.get("headers", ()) if k not in (b"content-type", b"content-length")]
        scope["headers"] = [*kept, (b"content-type", b"application/json"),
                            (b"content-length", str(len(encoded)).encode())]
        await next_app(scope, receive_again(encoded, receive), send)


def receive_again(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the route `body` (already read), then the client's own messages (its disconnect)."""
    sent = False

    async def replay() -> ReceiveMessage:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _form_schema(path: str) -> Schema:
    """The multipart form of `path`: the file, then the route's text fields."""
    text = {"length": "short, normal or long", "question": "A question about the image",
            "object": 'The object to find, e.g. "red circle"', "model": "A model, name@version, alias or preview"}
    properties: dict[str, Schema | Reference] = {
        "image": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description="A JPEG, PNG or WebP file")}
    for name in UPLOAD_FIELDS[path]:
        properties[name] = Schema(type=OpenAPIType.BOOLEAN, description="Stream the text as server-sent events") \
            if name == "stream" else Schema(type=OpenAPIType.STRING, description=text[name])
    required = ["image", *[n for n in UPLOAD_FIELDS[path] if n in REQUIRED_FIELDS]]
    return Schema(type=OpenAPIType.OBJECT, required=required, properties=properties)


def upload_operation(path: str, base: type[Operation] = Operation) -> type[Operation]:
    """`base` with `path`'s multipart form documented beside its JSON body (Swagger UI offers a file picker)."""

    @dataclass
    class UploadOperation(base):  # type: ignore[valid-type,misc]
        def __post_init__(self) -> None:
            parent = getattr(super(), "__post_init__", None)
            if parent is not None:
                parent()
            if isinstance(self.request_body, RequestBody):
                self.request_body.content = {**self.request_body.content,
                                             "multipart/form-data": OpenAPIMediaType(schema=_form_schema(path))}

    return UploadOperation
