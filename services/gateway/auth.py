"""Who is calling and what may they do: API-key authentication, rate limiting, scope guards.

`AuthMiddleware` runs on every route not marked `opt={"public": True}` (and not the
OpenAPI docs): it reads the key from `Authorization: Bearer <key>` or
`X-Moondream-Auth: <key>` (WebSockets may also use `?api_key=`), resolves it to a
`Principal` (401 saying what is wrong otherwise), then takes a token from the key's
bucket (429 with `Retry-After` when empty). Controllers declare the scopes they need
with `guards=[requires("ml")]` (403 naming them) and receive the caller as the
`principal` dependency.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
    WebSocketException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Guard, Message, Receive, Scope, Send

from dreamforge.v1 import common_pb2
from services.gateway.keys import KeyStore, Principal, Unauthenticated
from services.gateway.ratelimit import RateLimiter

log = logging.getLogger("dreamforge.gateway.auth")

PUBLIC = "public"  # route opt key: no API key needed
_DOCS_PREFIX = "/docs"


def key_from_scope(scope: Scope) -> str:
    """The raw API key the client sent; Unauthenticated when there is none."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
    if authorization := headers.get("authorization", "").strip():
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must read `Bearer <API key>`")
        return token.strip()
    if moondream := headers.get("x-moondream-auth", "").strip():
        return moondream
    if scope["type"] == ScopeType.WEBSOCKET:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key")
        if values and values[0].strip():
            return values[0].strip()
        raise Unauthenticated("missing API key: send `Authorization: Bearer <key>` or `?api_key=<key>`")
    raise Unauthenticated("missing API key: send `Authorization: Bearer <key>`")


def _is_docs(scope: Scope) -> bool:
    return str(scope["path"]).startswith(_DOCS_PREFIX)


def _fail(scope: Scope, exc: HTTPException) -> Exception:
    """WebSocket handshakes are refused with close code 4000 + HTTP status."""
    if scope["type"] == ScopeType.WEBSOCKET:
        return WebSocketException(detail=exc.detail, code=4000 + exc.status_code)
    return exc


class AuthMiddleware(ASGIMiddleware):
    """Authenticate the key and spend one token of its rate limit, before any handler runs."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)
    exclude_opt_key = PUBLIC

    def __init__(self, keys: KeyStore, limiter: RateLimiter) -> None:
        self.keys = keys
        self.limiter = limiter
        self.should_bypass_for_scope = _is_docs

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        try:
            principal = await self.keys.authenticate(key_from_scope(scope))
        except Unauthenticated as exc:
            raise _fail(scope, NotAuthorizedException(
                detail=str(exc), headers={"WWW-Authenticate": 'Bearer realm="dreamforge"'})) from None
        scope["user"] = principal
        scope["auth"] = principal.key_id
        headers: list[tuple[bytes, bytes]] = []
        try:
            decision = await self.limiter.hit(principal)
        except Exception as exc:  # Redis down: serve (fail open) rather than refuse every call
            log.warning("rate limiter unavailable, request not limited",
                        extra={"key_id": principal.key_id, "error": repr(exc)})
        else:
            if not decision.allowed:
                raise _fail(scope, TooManyRequestsException(
                    detail=(f"rate limit of {decision.limit_per_minute} requests/minute exceeded for API key "
                            f"{principal.key_id}; retry in {decision.retry_after_s} s"),
                    headers={"Retry-After": str(decision.retry_after_s)}))
            headers = [(b"x-ratelimit-limit", str(decision.limit_per_minute).encode()),
                       (b"x-ratelimit-remaining", str(decision.remaining).encode())]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and headers:
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await next_app(scope, receive, send_with_headers)


def requires(*any_of: str) -> Guard:
    """Guard: the caller's key must carry one of `any_of` (admin carries them all).

    Async although it never awaits: Litestar runs a synchronous guard in a worker thread, a thread
    round trip on every guarded request for a check of a few microseconds."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):  # public route wrongly guarded: refuse
            raise NotAuthorizedException(detail="missing API key")
        if not any(principal.has_scope(scope) for scope in any_of):
            needed = " or ".join(f"`{s}`" for s in any_of)
            raise _fail(connection.scope, PermissionDeniedException(
                detail=f"API key {principal.key_id} lacks the {needed} scope this call requires"))

    guard.__name__ = f"requires_{'_or_'.join(any_of)}"
    return guard


async def provide_principal(scope: Scope) -> Principal:
    """Dependency `principal`: the authenticated caller of this request."""
    principal = scope.get("user")
    if not isinstance(principal, Principal):
        raise NotAuthorizedException(detail="missing API key")
    return principal


def to_caller(principal: Principal) -> common_pb2.Caller:
    """The `Caller` every internal gRPC call carries."""
    return common_pb2.Caller(tenant_id=principal.tenant_id, key_id=principal.key_id,
                             scopes=sorted(principal.scopes))
