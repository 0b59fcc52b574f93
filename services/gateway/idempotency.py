"""`Idempotency-Key` on skill calls: a retried call gets the first call's answer instead of being
served, and billed, again.

Why: the gateway names every output itself (request_ids.py), so a client that retries after losing a
response would be served and billed twice. With the same key (kept per tenant for 24 hours in Redis)
the retry gets the first answer back (the same `request_id`); the same key with a different request
is refused, and while the first is still being answered the retry is told to wait. Only a complete
answer is kept: a failed call can be retried for real. A streamed answer cannot be replayed, so a key
on a stream is refused. With Redis unreachable the call is served without the guarantee (logged), as
the rate limit fails open.

`IdempotencyStore` holds that rule once; the HTTP front (`IdempotencyMiddleware`: header
`Idempotency-Key`, 422 / 409) and the gRPC front (grpc_front.py: metadata `idempotency-key`,
INVALID_ARGUMENT / ABORTED) each map it to their protocol. One key space per tenant serves both, so a
key sent on one front and then on the other is a key used for a different request. The HTTP
fingerprint is taken from the JSON body the route validates, after uploads.py has turned a form into
it, so a form sent again (with a new multipart boundary) still matches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Annotated, TypeVar

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
#: Beyond the longest a call can run, before a key held by a gateway that died mid-call is free again.
PENDING_MARGIN_S = 15
_SANE_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_T = TypeVar("_T")

#: The header as the skill routes declare it, for the OpenAPI document (this middleware acts on it).
IdempotencyKeyHeader = Annotated[str | None, Parameter(
    header="Idempotency-Key", max_length=200, pattern=r"^[!-~]+$",
    description="A retry with the same key (24 hours, per tenant) gets the first answer back, served and billed "
                "once; the same key with another request is a 422, while the first runs a 409. Not with streaming.")]


def sane_key(key: str) -> bool:
    """1-200 visible ASCII characters: what either front accepts as a key."""
    return _SANE_KEY.match(key) is not None


class KeyReused(Exception):
    """The key was used before with a different request."""


class StillRunning(Exception):
    """The first call with this key is still being answered."""


@dataclass(frozen=True)
class Answer:
    """A kept answer: its request id and its bytes as text (JSON on HTTP, base64 protobuf on gRPC)."""

    request_id: str
    content_type: str
    body: str


class IdempotencyStore:
    """Claims a tenant's key for one call, keeps that call's answer and hands it to retries (Redis).

    A claim lasts as long as a call can run: its two backend calls (the quota check and inference,
    Batch's calls run at once) each end within `backend_timeout_s`. So a key whose gateway died
    mid-call is free again within that (with a margin), not held until someone clears it.
    """

    def __init__(self, redis: Redis, backend_timeout_s: float, prefix: str = "gateway:idempotency") -> None:
        self.redis = redis
        self.prefix = prefix
        self.pending_s = math.ceil(2 * backend_timeout_s) + PENDING_MARGIN_S

    def slot(self, tenant: str, key: str) -> str:
        return f"{self.prefix}:{tenant}:{hashlib.sha256(key.encode()).hexdigest()}"

    @staticmethod
    def fingerprint(operation: str, request: bytes) -> str:
        """What a retry must repeat: the operation (route or message type) and the request's bytes."""
        return hashlib.sha256(operation.encode() + b"\n" + request).hexdigest()

    async def claim(self, slot: str, fingerprint: str) -> Answer | None:
        """None: the call is this caller's to answer. An `Answer`: the first call's, to replay.

        Raises KeyReused, StillRunning, or RedisError when the store cannot be reached.
        """
        if await self.redis.set(slot, json.dumps({"fingerprint": fingerprint}), nx=True, ex=self.pending_s):
            return None
        earlier = json.loads(await self.redis.get(slot) or "null")
        if earlier is not None and earlier["fingerprint"] != fingerprint:
            raise KeyReused
        if earlier is None or "body" not in earlier:  # still running (or its slot expired a moment ago)
            raise StillRunning
        return Answer(earlier["request_id"], earlier["content_type"], earlier["body"])

    async def answer_once(self, slot: str, fingerprint: str, run: Callable[[], Awaitable[_T]],
                          kept: Callable[[_T], Answer | None]) -> _T:
        """Runs the claimed call; keeps `kept(result)` for retries, or frees the key when there is none
        (the call failed, or its answer is not one to replay) so that a retry runs for real."""
        stored = False
        try:
            result = await run()
            answer = kept(result)
            if answer is not None:
                try:
                    await self.redis.set(slot, json.dumps({"fingerprint": fingerprint, **asdict(answer)}), ex=KEEP_S)
                    stored = True
                except RedisError as exc:
                    log.warning("idempotency store unavailable, answer not kept", extra={"error": repr(exc)})
            return result
        finally:
            if not stored:
                try:
                    await self.redis.delete(slot)
                except RedisError:
                    log.warning("idempotency key not freed; it expires in %d s", self.pending_s)


class IdempotencyMiddleware(ASGIMiddleware):
    """The HTTP front: header `Idempotency-Key`; a replay says `Idempotent-Replayed: true`."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, store: IdempotencyStore, max_body_bytes: int) -> None:
        self.store = store
        self.max_body_bytes = max_body_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        key = Headers.from_scope(scope).get(HEADER)
        if key is None or scope.get("method") != "POST" or scope["path"] not in IDEMPOTENT_PATHS:
            await next_app(scope, receive, send)
            return
        if not sane_key(key):
            raise ClientException("header `Idempotency-Key` must be 1-200 visible ASCII characters (a UUID is usual)")
        body = await read_body(receive, self.max_body_bytes)
        if _streams(body):
            raise ClientException("header `Idempotency-Key` cannot be used with `\"stream\": true`: a stream is not "
                                  "kept to be replayed; send the call without the key, or without streaming")
        slot = self.store.slot(getattr(scope.get("user"), "tenant_id", ""), key)
        fingerprint = self.store.fingerprint(scope["path"], body)
        try:
            earlier = await self.store.claim(slot, fingerprint)
        except KeyReused:
            raise ClientException(status_code=422, detail="header `Idempotency-Key` was used before with a different "
                                                          "request: use a new key for a new call") from None
        except StillRunning:
            raise HTTPException(status_code=409, headers={"Retry-After": "1"},
                                detail="a call with this `Idempotency-Key` is still being answered; retry in a "
                                       "moment") from None
        except RedisError as exc:
            log.warning("idempotency store unavailable, call served without it", extra={"error": repr(exc)})
            await next_app(scope, receive_again(body, receive), send)
            return
        if earlier is not None:
            await _replay(scope, send, earlier)
            return
        await self._answer_once(scope, receive_again(body, receive), send, next_app, slot, fingerprint)

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

        def kept(_: None) -> Answer | None:
            if status != 200 or not content_type.startswith("application/json"):
                return None
            return Answer(ensure_request_id(scope), content_type, b"".join(chunks).decode())

        await self.store.answer_once(slot, fingerprint, lambda: next_app(scope, receive, keep), kept)


async def _replay(scope: Scope, send: Send, earlier: Answer) -> None:
    adopt_request_id(scope, earlier.request_id)  # the X-Request-Id of the first answer
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", earlier.content_type.encode()), (REPLAYED_HEADER.encode(), b"true")]})
    await send({"type": "http.response.body", "body": earlier.body.encode(), "more_body": False})


def _streams(body: bytes) -> bool:
    try:
        parsed = json.loads(body)
    except ValueError:
        return False  # the route refuses it with the message
    return isinstance(parsed, dict) and parsed.get("stream") is True
