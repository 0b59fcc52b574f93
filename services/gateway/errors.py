"""One JSON error shape for every failure: `{"error": {"code", "message", "request_id"}}`.

Maps Litestar's own errors (validation, 404/405, body too large), the gateway's domain
errors (`dreamforge.grpcio.ServiceError`) and the gRPC status of a backend call to an
HTTP status with a message that says what to fix. Anything else is a 500, logged with
its traceback: bad input should never get there.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import grpc
import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import ExceptionHandlersMap

from dreamforge.grpcio import ServiceError
from services.gateway.request_ids import ensure_request_id

log = logging.getLogger("dreamforge.gateway.errors")


class ErrorDetail(msgspec.Struct):
    code: Annotated[str, msgspec.Meta(description="Stable machine-readable code, e.g. `invalid_argument`, `not_found`")]
    message: Annotated[str, msgspec.Meta(description="What is wrong and how to fix it")]
    request_id: Annotated[str, msgspec.Meta(description="Also in the `X-Request-Id` header; quote it in reports")]


class ErrorResponse(msgspec.Struct):
    """The body of every error response (every 4xx and 5xx) of the HTTP API."""

    error: ErrorDetail


#: gRPC status of a backend (or domain) error -> HTTP status.
GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.CANCELLED: 503,
}

#: HTTP status -> error code, for errors that do not come from gRPC.
HTTP_CODES: dict[int, str] = {
    400: "invalid_argument", 401: "unauthenticated", 403: "permission_denied", 404: "not_found",
    405: "method_not_allowed", 408: "request_timeout", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable", 429: "rate_limited", 500: "internal", 501: "unimplemented", 502: "bad_gateway",
    503: "unavailable", 504: "deadline_exceeded",
}


def error_response(request: Request[Any, Any, Any], status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> Response[ErrorResponse]:
    body = ErrorResponse(ErrorDetail(code=code, message=message, request_id=ensure_request_id(request.scope)))
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def validation_message(exc: ValidationException, request: Request[Any, Any, Any] | None = None) -> str:
    """Name each offending field as the client spells it: `query field `from`: Expected `int` >= 1`.

    With the request, parameters get their wire names (`from`, `Idempotency-Key`) rather than
    the handler's argument names, and a missing body says which fields it needs.
    """
    problems = exc.extra if isinstance(exc.extra, list) else []
    parts: list[str] = []
    for problem in problems:
        if not isinstance(problem, dict):
            continue
        source = problem.get("source") or ""
        source = str(getattr(source, "value", source))  # Litestar passes a ParamType enum for parameters
        key, message = str(problem.get("key", "")), str(problem.get("message", ""))
        missing = message == repr(key)  # Litestar reports a missing value as the KeyError's text: "'data'"
        if source == "body" and key == "data":
            parts.append(_missing_body_message(request) if missing else f"request body: {message}")
        elif key:
            name = key if source == "body" else _wire_name(request, key)
            parts.append(f"{source or 'parameter'} field `{name}`: {'missing required value' if missing else message}")
        else:
            parts.append(message)
    return "; ".join(parts) or str(exc.detail)


def _handler_parameter(request: Request[Any, Any, Any] | None, name: str) -> Any:
    """The handler's FieldDefinition for argument `name`, when the request was routed."""
    if request is None or "route_handler" not in request.scope:
        return None
    return request.route_handler.parsed_fn_signature.parameters.get(name)


def _wire_name(request: Request[Any, Any, Any] | None, key: str) -> str:
    """`from_version` -> `from`: the name the client sent, from the handler's `Parameter(query=/header=)`."""
    field = _handler_parameter(request, key)
    kwarg = getattr(field, "kwarg_definition", None)
    return str(getattr(kwarg, "query", None) or getattr(kwarg, "header", None) or getattr(kwarg, "cookie", None)
               or key)


def _missing_body_message(request: Request[Any, Any, Any] | None) -> str:
    message = "missing request body: send a JSON object with `Content-Type: application/json`"
    field = _handler_parameter(request, "data")
    body_type = getattr(field, "annotation", None)
    if isinstance(body_type, type) and issubclass(body_type, msgspec.Struct):
        required = [f"`{f.encode_name}`" for f in msgspec.structs.fields(body_type) if f.required]
        if required:
            return f"{message} and the required field(s) {', '.join(required)}"
        return f"{message} (every field is optional: `{{}}` takes the defaults)"
    return message


def _malformed_body_message(request: Request[Any, Any, Any], detail: str) -> str:
    message = f"malformed JSON body: {detail}"
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type.lower():
        sent = f"`{content_type}`" if content_type else "missing"
        message += f"; send a JSON body with `Content-Type: application/json` (this request's Content-Type is {sent})"
    return message


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorResponse]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        message = validation_message(exc, request)
    elif isinstance(exc, RequestEntityTooLarge):
        limit = request.route_handler.resolve_request_max_body_size() if "route_handler" in request.scope else None
        message = (f"request body exceeds the limit of {limit} bytes ({limit / 1048576:.0f} MiB)"
                   if limit else "request body too large")
    elif isinstance(exc.__cause__, SerializationException):
        message = _malformed_body_message(request, exc.detail)
    elif status == 404 and exc.detail == "Not Found":
        message = f"no route for {request.method} {request.url.path}"
    elif status == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    else:
        message = exc.detail
    if status >= 500:
        log.error("server error", extra={"request_id": ensure_request_id(request.scope), "error": message})
    return error_response(request, status, HTTP_CODES.get(status, f"http_{status}"), message, exc.headers)


def handle_service_error(request: Request[Any, Any, Any], exc: ServiceError) -> Response[ErrorResponse]:
    return _from_grpc(request, exc.code, str(exc))


def handle_rpc_error(request: Request[Any, Any, Any], exc: grpc.aio.AioRpcError) -> Response[ErrorResponse]:
    return _from_grpc(request, exc.code(), exc.details() or exc.code().name)


def http_failure(code: grpc.StatusCode, message: str) -> tuple[int, str, str]:
    """The HTTP status, error code and message for a backend call that ended with gRPC status `code`.

    A deadline is a 504, not a 503: the service is up but did not answer in time (a big checkpoint on a
    slow machine, a long batch), and the message names the setting that sets the deadline."""
    status = GRPC_TO_HTTP.get(code)
    if status is None:  # INTERNAL, UNKNOWN, DATA_LOSS: the backend failed, not the caller
        return 502, "bad_gateway", f"an internal service failed: {message}"
    if status == 503:
        message = f"a backend service is unavailable: {message}"
    elif status == 504:
        message = (f"a backend service did not answer within the gateway's deadline "
                   f"(DREAMFORGE_BACKEND_TIMEOUT_S): {message}")
    return status, code.name.lower(), message


def _from_grpc(request: Request[Any, Any, Any], code: grpc.StatusCode, message: str) -> Response[ErrorResponse]:
    status, error_code, text = http_failure(code, message)
    if status == 502:
        log.error("backend error", extra={"request_id": ensure_request_id(request.scope),
                                          "grpc_code": code.name, "error": message})
    return error_response(request, status, error_code, text)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorResponse]:
    request_id = ensure_request_id(request.scope)
    log.exception("unhandled error", extra={"request_id": request_id, "path": request.url.path})
    return error_response(request, 500, "internal", f"internal error (request id {request_id})")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: handle_http_exception,
    ServiceError: handle_service_error,
    grpc.aio.AioRpcError: handle_rpc_error,
    Exception: handle_unexpected,
}
