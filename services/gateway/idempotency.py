"""`Idempotency-Key` on the skill routes: a retried call gets the first call's answer instead of being
served, and billed, again.

Why: the gateway names every output itself (request_ids.py), so a client that retries after losing a
response would be served and billed twice. With the same `Idempotency-Key` (kept per tenant for 24
hours in Redis) the retry gets the first answer back (`Idempotent-Replayed: true`, the same
`request_id`); the same key with a different request is a 422, and while the first is still being
answered a 409. Only a complete 200 answer is kept: a failed call can be retried for real. A streamed
answer cannot be replayed, so a key with `"stream": true` is a 400. With Redis unreachable the call is
served without the guarantee (logged), as the rate limit fails open. The fingerprint is taken from
the JSON body the route validates, after uploads.py has turned a form into it, so a form sent again
(with a new multipart boundary) still matches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Annotated, Any

from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.exceptions import ClientException, HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.params import Parameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.gateway.request_ids import adopt_request_id, ensure_request_id
from services.gateway.uploads import read_body, receive_again

log = logging.getLogger("dreamforge.gateway.idempotency")

HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
IDEMPOTENT_PATHS = frozenset({"/v1/caption", "/v1/query", "/v1/detect", "/v1/point", "/v1/compare", "/v1/batch",
                              "/v1/chat/completions"})
KEEP_S = 24 * 3600
#: How long a key stays "being answered": a gateway that died mid-call frees it after this.
PENDING_S = 600
_SANE_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")

#: The header as the skill routes declare it, for the OpenAPI document (this middleware acts on it).
IdempotencyKeyHeader = Annotated[str | None, Parameter(
    header="Idempotency-Key", max_length=200, pattern=r"^[!-~]+$",
    description="A retry with the same key (24 hours, per tenant) gets the first answer back, served and billed "
                "once; the same key with another request is a 422, while the first runs a 409. Not with streaming.")]


class IdempotencyMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, redis: Redis, max_body_bytes: int, prefix: str = "gateway:idempotency") -> None:
        self.redis = redis
        self.max_body_bytes = max_body_bytes
        self.prefix = prefix

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        key = Headers.from_scope(scope).get(HEADER)
        if key is None or scope.get("method") != "POST" or scope["path"] not in IDEMPOTENT_PATHS:
            await next_app(scope, receive, send)
            return
        if not _SANE_KEY.match(key):
            raise ClientException("header `Idempotency-Key` must be 1-200 visible ASCII characters (a UUID is usual)")
        body = await read_body(receive, self.max_body_bytes)
        if _streams(body):
            raise ClientException("header `Idempotency-Key` cannot be used with `\"stream\": true`: a stream is not "
                                  "kept to be replayed; send the call without the key, or without streaming")
        tenant = getattr(scope.get("user"), "tenant_id", "")
        slot = f"{self.prefix}:{tenant}:{hashlib.sha256(key.encode()).hexdigest()}"
        fingerprint = hashlib.sha256(scope["path"].encode() + b"\n" + body).hexdigest()
        try:
            claimed = await self.redis.set(slot, json.dumps({"fingerprint": fingerprint}), nx=True, ex=PENDING_S)
            earlier = None if claimed else json.loads(await self.redis.get(slot) or "null")
        except RedisError as exc:
            log.warning("idempotency store unavailable, call served without it", extra={"error": repr(exc)})
            await next_app(scope, receive_again(body, receive), send)
            return
        if not claimed:
            await self._answer_again(scope, send, earlier, fingerprint)
            return
        await self._answer_once(scope, receive_again(body, receive), send, next_app, slot, fingerprint)

    async def _answer_again(self, scope: Scope, send: Send, earlier: dict[str, Any] | None, fingerprint: str) -> None:
        if earlier is not None and earlier["fingerprint"] != fingerprint:
            raise ClientException(status_code=422, detail="header `Idempotency-Key` was used before with a different "
                                                          "request: use a new key for a new call")
        if earlier is None or "body" not in earlier:  # still running (or its slot expired a moment ago)
            raise HTTPException(status_code=409, headers={"Retry-After": "1"},
                                detail="a call with this `Idempotency-Key` is still being answered; retry in a moment")
        adopt_request_id(scope, earlier["request_id"])  # the X-Request-Id of the first answer
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", earlier["content_type"].encode()),
                                (REPLAYED_HEADER.encode(), b"true")]})
        await send({"type": "http.response.body", "body": earlier["body"].encode(), "more_body": False})

    async def _answer_once(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp, slot: str,
                           fingerprint: str) -> None:
        status, content_type, chunks = 0, "", []

        async def keep(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                content_type = dict(message.get("headers") or ()).get(b"content-type", b"").decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        kept = False
        try:
            await next_app(scope, receive, keep)
            if status == 200 and content_type.startswith("application/json"):
                answer = {"fingerprint": fingerprint, "request_id": ensure_request_id(scope),
                          "content_type": content_type, "body": b"".join(chunks).decode()}
                try:
                    await self.redis.set(slot, json.dumps(answer), ex=KEEP_S)
                    kept = True
                except RedisError as exc:
                    log.warning("idempotency store unavailable, answer not kept", extra={"error": repr(exc)})
        finally:
            if not kept:  # failed or not kept: the key is free for a real retry
                try:
                    await self.redis.delete(slot)
                except RedisError:
                    log.warning("idempotency key not freed; it expires in %d s", PENDING_S)


def _streams(body: bytes) -> bool:
    try:
        parsed = json.loads(body)
    except ValueError:
        return False  # the route refuses it with the message
    return isinstance(parsed, dict) and parsed.get("stream") is True

