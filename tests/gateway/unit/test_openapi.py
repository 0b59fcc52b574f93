"""The OpenAPI document promises what the gateway really answers: every error status a route can
return is documented with the `ErrorResponse` body, and Litestar's default error schema
(`{status_code, detail, extra}`, which the gateway never sends) appears nowhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.gateway.app import create_app
from services.gateway.errors import ErrorDetail, ErrorResponse
from tests.gateway.unit.test_app import make_deps

ERROR_REF = "#/components/schemas/ErrorResponse"
#: Routes that answer 503 with their own report rather than an error.
OWN_503 = {("GET", "/health"): "HealthReport", ("GET", "/ready"): "Readiness"}


@pytest.fixture(scope="module")
async def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(make_deps(Path(tmp_path_factory.mktemp("openapi"))))
    return app.openapi_schema.to_schema()  # type: ignore[no-any-return]


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), path): op for path, item in doc["paths"].items() for method, op in item.items()
            if isinstance(op, dict) and "responses" in op}


def schema_ref(response: dict[str, Any]) -> str | None:
    return response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")


def test_no_operation_uses_litestars_default_error_schema(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    assert "Validation Exception" not in text and "ValidationException" not in text
    for (method, path), op in operations(doc).items():
        for status, response in op["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            assert {"status_code", "detail"} - set(schema.get("properties", {})), (method, path, status)


def test_every_operation_documents_its_errors_with_the_error_schema(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    for (method, path), op in ops.items():
        responses = op["responses"]
        where = (method, path)
        for status, response in responses.items():
            if int(status) < 400:
                continue
            expected = OWN_503.get(where) if status == "503" else None
            assert schema_ref(response) == (f"#/components/schemas/{expected}" if expected else ERROR_REF), (
                where, status)
            assert response["description"], (where, status)
        if op.get("parameters") or op.get("requestBody"):
            assert "400" in responses, where
        if op.get("requestBody"):
            assert "413" in responses, where
        if op.get("security"):
            assert {"401", "429"} <= set(responses), where
        else:  # public: no key, so never a 401
            assert where in OWN_503 and "401" not in responses, where
    # every keyed operation takes input or is a plain read of the caller's own data
    assert {w for w, op in ops.items() if "400" not in op["responses"]} == {
        ("GET", "/health"), ("GET", "/ready"), ("GET", "/v1/whoami"), ("GET", "/v1/admin/tenants"),
        ("GET", "/v1/reward-metrics")}


def test_statuses_of_backend_and_admin_routes(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    backend = {"400", "401", "403", "404", "409", "429", "501", "502", "503"}
    for where in [("POST", "/v1/models/{model}/rollback"), ("GET", "/v1/models/{model}/versions/{version}"),
                  ("DELETE", "/v1/models/{model}"), ("GET", "/v1/resolve")]:
        assert backend <= set(ops[where]["responses"]), where
    assert set(ops[("GET", "/v1/whoami")]["responses"]) == {"200", "401", "429"}
    assert set(ops[("DELETE", "/v1/admin/keys/{key_id}")]["responses"]) == {"204", "400", "401", "403", "404", "409",
                                                                            "429"}
    assert "409" in ops[("POST", "/v1/admin/tenants")]["responses"]
    assert "404" in ops[("POST", "/v1/admin/keys")]["responses"]


def test_error_schema_mirrors_the_error_body(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["ErrorResponse"]["required"] == ["error"]
    assert schemas["ErrorResponse"]["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    detail = schemas["ErrorDetail"]
    fields = [f.encode_name for f in msgspec.structs.fields(ErrorDetail)]
    assert sorted(detail["required"]) == sorted(fields) == sorted(detail["properties"])
    assert all(detail["properties"][f]["type"] == "string" for f in fields)
    body = msgspec.to_builtins(ErrorResponse(ErrorDetail(code="not_found", message="m", request_id="req_1")))
    assert set(body) == set(schemas["ErrorResponse"]["properties"])
    assert set(body["error"]) == set(detail["properties"])


def test_artifact_is_documented_as_octet_stream_with_its_headers(doc: dict[str, Any]) -> None:
    ok = operations(doc)[("GET", "/v1/models/{model}/versions/{version}/artifact")]["responses"]["200"]
    assert list(ok["content"]) == ["application/octet-stream"]
    assert {"X-Artifact-Sha256", "Content-Disposition"} <= set(ok["headers"])
    version = next(p for p in operations(doc)[("GET", "/v1/models/{model}/versions/{version}/artifact")][
        "parameters"] if p["name"] == "version")
    assert version["schema"]["minimum"] == 1 and version["schema"]["maximum"] == 2**31 - 1


def test_request_bodies_are_closed_as_the_gateway_enforces(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for name in ["CreateTenant", "CreateKey", "CreateModel", "CreateVersion", "Promote", "Rollback",
                 "CreatePreview"]:
        assert schemas[name]["additionalProperties"] is False, name
    assert "additionalProperties" not in schemas["ModelOut"]  # responses may grow fields
