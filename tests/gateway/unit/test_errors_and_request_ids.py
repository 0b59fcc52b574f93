"""Error mapping tables, validation messages and request-id rules."""

from __future__ import annotations

from typing import Annotated

import grpc
import pytest
from litestar import Litestar, post
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from litestar.testing import TestClient

from services.gateway.errors import EXCEPTION_HANDLERS, GRPC_TO_HTTP, validation_message
from services.gateway.request_ids import client_request_id, ensure_request_id
from services.gateway.schemas.models import Promote, Rollback


def test_grpc_status_mapping() -> None:
    expected = {
        grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.FAILED_PRECONDITION: 409, grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
        grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
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


@post("/promote/{model:str}")
async def promote(model: str, data: Promote,
                  from_version: Annotated[int, Parameter(query="from", ge=1)] = 1,
                  idempotency_key: Annotated[str | None, Parameter(header="Idempotency-Key", max_length=5)] = None,
                  ) -> None:
    return None


@post("/rollback")
async def rollback(data: Rollback) -> None:
    return None


@pytest.mark.parametrize(("path", "kwargs", "expected"), [
    # no body at all: Litestar's own message is the bare KeyError text "'data'"
    ("/promote/m", {}, "missing request body: send a JSON object with `Content-Type: application/json` and the "
                       "required field(s) `version`"),
    ("/rollback", {"headers": {"Content-Type": "application/json"}},
     "missing request body: send a JSON object with `Content-Type: application/json` (every field is optional: "
     "`{}` takes the defaults)"),
    ("/promote/m", {"content": b"null", "headers": {"Content-Type": "application/json"}},
     "request body: Expected `object`, got `null`"),
    ("/promote/m", {"json": {"version": 1, "colour": "red"}}, "request body: Object contains unknown field `colour`"),
    ("/promote/m", {"json": {"version": 0}}, "body field `version`: Expected `int` >= 1"),
    # parameters are named as sent, not as the handler's arguments
    ("/promote/m?from=0", {"json": {"version": 1}}, "query field `from`: Expected `int` >= 1"),
    ("/promote/m", {"json": {"version": 1}, "headers": {"Idempotency-Key": "toolong"}},
     "header field `Idempotency-Key`: Expected `str` of length <= 5"),
    ("/promote/m", {"content": b"version=1", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
     "send a JSON body with `Content-Type: application/json` (this request's Content-Type is "
     "`application/x-www-form-urlencoded`)"),
])
def test_validation_messages_say_what_to_fix(path: str, kwargs: dict[str, object], expected: str) -> None:
    app = Litestar([promote, rollback], exception_handlers=EXCEPTION_HANDLERS, logging_config=None)
    with TestClient(app) as client:
        reply = client.post(path, **kwargs)  # type: ignore[arg-type]
    assert reply.status_code == 400, reply.text
    message = reply.json()["error"]["message"]
    assert expected in message, message
    assert "'data'" not in message and "ParamType" not in message


def scope_with(request_id: str | None) -> dict[str, object]:
    headers = [(b"x-request-id", request_id.encode())] if request_id is not None else []
    return {"type": "http", "headers": headers}


def test_the_gateway_makes_request_ids_and_echoes_sane_client_ids_only() -> None:
    scope = scope_with("abc-123.x:y_z")
    made = ensure_request_id(scope)  # type: ignore[arg-type]
    assert made.startswith("req_") and ensure_request_id(scope) == made  # type: ignore[arg-type]
    assert client_request_id(scope) == "abc-123.x:y_z"  # type: ignore[arg-type]
    for insane in ["", "has space", "x" * 129, "semi;colon", "ünï"]:
        assert ensure_request_id(scope_with(insane)).startswith("req_")  # type: ignore[arg-type]
        assert client_request_id(scope_with(insane)) == ""  # type: ignore[arg-type]
    assert client_request_id(scope_with(None)) == ""  # type: ignore[arg-type]
    assert ensure_request_id(scope_with("same")) != ensure_request_id(scope_with("same"))  # type: ignore[arg-type]
