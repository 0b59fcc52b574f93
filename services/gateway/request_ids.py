"""Request ids and traces: one id and one server span per HTTP request or WebSocket.

The id is on the response, in error bodies and in logs. The span is the root of everything
the request causes (gRPC calls, the events inference writes, their consumers), or a child of
the caller's span when the request carries a W3C `traceparent`; the access-log line is written
inside it, so it carries the trace id.

The gateway always makes the id (`req_<hex>`): it names the served output that is recorded,
billed and rated, so a client must not choose it — a reused id would be served again but
recorded once (free answers), and another tenant's id would collide with theirs. A sane
client-supplied `X-Request-Id` (1-128 of [A-Za-z0-9._:-]) is kept for correlation: echoed as
`X-Client-Request-Id` and logged as `client_request_id`. The ids live in the ASGI scope's
state so the exception handlers (which also run for unrouted paths) and the `before_send`
hook that writes the headers all see the same ones. Each request's duration also goes to the
`http.server.request.duration` metric (dreamforge/metrics.py).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from contextvars import ContextVar

from litestar.datastructures import Headers
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.trace import SpanKind, Status, StatusCode

from dreamforge.metrics import meter
from dreamforge.tracing import extract_context, tracer

HEADER = "x-request-id"
CLIENT_HEADER = "x-client-request-id"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STATE_KEY = "dreamforge_request_id"

#: The id of the request being handled, for log records made deep in the stack.
current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")

access_log = logging.getLogger("dreamforge.gateway.access")
_tracer = tracer("dreamforge.gateway")
_TRACE_HEADERS = (b"traceparent", b"tracestate")
#: OpenTelemetry's HTTP server metric (Prometheus: http_server_request_duration_seconds), by method,
#: route template (not the raw path: ids in paths would make a series per request) and status.
_durations = meter("dreamforge.gateway").create_histogram(
    "http.server.request.duration", unit="s", description="Time from the request's arrival to its last byte")


def new_request_id() -> str:
    return f"req_{secrets.token_hex(8)}"


def ensure_request_id(scope: Scope) -> str:
    """The request id of this connection, made on first use."""
    state = scope.setdefault("state", {})
    request_id: str | None = state.get(_STATE_KEY)
    if request_id is None:
        request_id = state[_STATE_KEY] = new_request_id()
    return request_id


def adopt_request_id(scope: Scope, request_id: str) -> None:
    """Answer this connection under an earlier request's id (an idempotent replay: idempotency.py)."""
    scope.setdefault("state", {})[_STATE_KEY] = request_id


def sane_client_id(value: str) -> str:
    """`value` when it is fit to log and echo as the caller's own id, else ""."""
    return value if _SANE.match(value or "") else ""


def client_request_id(scope: Scope) -> str:
    """The caller's own `X-Request-Id` when sane, else ""."""
    return sane_client_id(Headers.from_scope(scope).get(HEADER, ""))


async def add_request_id_header(message: Message, scope: Scope) -> None:
    """`before_send` hook: every HTTP response (and WebSocket accept) carries the id, and the caller's own."""
    if message["type"] in ("http.response.start", "websocket.accept"):
        headers = list(message.get("headers") or [])
        headers.append((HEADER.encode(), ensure_request_id(scope).encode()))
        if client_id := client_request_id(scope):
            headers.append((CLIENT_HEADER.encode(), client_id.encode()))
        message["headers"] = headers


class RequestContextMiddleware(ASGIMiddleware):
    """Binds the request id to the context and writes one access-log line per request."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request_id = ensure_request_id(scope)
        token = current_request_id.set(request_id)
        started = time.perf_counter()
        status = 0
        method = str(scope.get("method", "WS"))
        parent = extract_context({k.decode("latin-1"): v.decode("latin-1")
                                  for k, v in scope.get("headers", ()) if k in _TRACE_HEADERS})

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "websocket.accept":
                status = 101
            await send(message)

        with _tracer.start_as_current_span(method, context=parent, kind=SpanKind.SERVER,
                                           set_status_on_exception=False) as span:
            try:
                await next_app(scope, receive, capture)
            except Exception as exc:
                status = getattr(exc, "status_code", 500)
                raise
            finally:
                user = scope.get("user")
                tenant_id, key_id = getattr(user, "tenant_id", None), getattr(user, "key_id", None)
                if span.is_recording():
                    route = scope.get("path_template")
                    if route:
                        span.update_name(f"{method} {route}")
                    span.set_attributes({"http.request.method": method, "url.path": scope["path"],
                                         "http.route": route or "", "http.response.status_code": status,
                                         "dreamforge.request_id": request_id, "dreamforge.tenant_id": tenant_id or "",
                                         "dreamforge.key_id": key_id or ""})
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
                elapsed_s = time.perf_counter() - started
                _durations.record(elapsed_s, {"http.request.method": method, "http.response.status_code": status,
                                              "http.route": scope.get("path_template") or ""})
                access_log.info("request", extra={
                    "request_id": ensure_request_id(scope), "method": method, "path": scope["path"], "status": status,
                    "duration_ms": round(elapsed_s * 1000, 2), "tenant_id": tenant_id, "key_id": key_id,
                    "client_request_id": client_request_id(scope) or None,
                })
                current_request_id.reset(token)
