"""Error mapping tables, validation messages and request-id rules."""

from __future__ import annotations

import grpc
from litestar.exceptions import ValidationException

from services.gateway.errors import GRPC_TO_HTTP, validation_message
from services.gateway.request_ids import ensure_request_id


def test_grpc_status_mapping() -> None:
    expected = {
        grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.FAILED_PRECONDITION: 409, grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    }
    assert {code: GRPC_TO_HTTP[code] for code in expected} == expected
    assert grpc.StatusCode.INTERNAL not in GRPC_TO_HTTP  # a backend bug is a 502, never blamed on the caller


def test_validation_message_names_each_field() -> None:
    exc = ValidationException("Validation failed", extra=[
        {"message": "Object contains unknown field `colour`", "key": "data", "source": "body"},
        {"message": "Expected `int`, got `str`", "key": "page_size", "source": "query"},
    ])
    assert validation_message(exc) == (
        "request body: Object contains unknown field `colour`; query field `page_size`: Expected `int`, got `str`")
    assert validation_message(ValidationException("Missing required header 'x'")) == "Missing required header 'x'"


def scope_with(request_id: str | None) -> dict[str, object]:
    headers = [(b"x-request-id", request_id.encode())] if request_id is not None else []
    return {"type": "http", "headers": headers}


def test_request_ids_keep_sane_client_ids_only() -> None:
    assert ensure_request_id(scope_with("abc-123.x:y_z")) == "abc-123.x:y_z"  # type: ignore[arg-type]
    for insane in ["", "has space", "x" * 129, "semi;colon", "ünï"]:
        assert ensure_request_id(scope_with(insane)).startswith("req_")  # type: ignore[arg-type]
    scope = scope_with(None)
    first = ensure_request_id(scope)  # type: ignore[arg-type]
    assert first.startswith("req_") and ensure_request_id(scope) == first  # type: ignore[arg-type]
