"""The error responses of the OpenAPI document: every status a route can return, with the real body.

Litestar documents only a 400 for routes that take input, with its own `ValidationException`
body (`{status_code, detail, extra}`), which the gateway never sends: every error here is an
`ErrorResponse` (`{"error": {"code", "message", "request_id"}}`, see `errors.py`).

`DocumentErrors` (a plugin, so no handler can be forgotten) gives each HTTP route, as it is
registered, an `ErrorResponse` for every status the gateway can answer it with, derived from
what the route is:

- takes parameters or a body: 400 (validation; a malformed JSON body too);
- takes a body: 413 (over `DREAMFORGE_MAX_BODY_BYTES`);
- needs an API key (not `opt={"public": True}`): 401 and 429 (the key's rate limit);
- has guards: 403 (missing scope);
- calls a backend service (takes one of `BACKEND_DEPENDENCIES`): every status `errors.py`
  maps a gRPC failure to, plus 502.

Statuses only a handler knows about (a key-store conflict, say) it declares itself with
`responses=error_responses(404, 409)`; a handler's own `responses` win over the derived ones.

`ClosedStructs` documents request bodies declared `forbid_unknown_fields=True` with
`additionalProperties: false`, as the gateway enforces (an unknown field is a 400).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from litestar.constants import RESERVED_KWARGS
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, Schema
from litestar.plugins import OpenAPISchemaPlugin, ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute
from litestar.typing import FieldDefinition

from services.gateway.auth import PUBLIC
from services.gateway.errors import GRPC_TO_HTTP, HTTP_CODES, ErrorResponse

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

#: Dependencies that call a backend service over gRPC: their failures reach the client mapped by `errors.py`.
BACKEND_DEPENDENCIES = frozenset({"registry", "feedback", "trainer", "tuning"})
#: Every status a backend failure can become (INTERNAL/UNKNOWN -> 502).
BACKEND_STATUSES = frozenset(GRPC_TO_HTTP.values()) | {502}

#: What each error status means on this API (the response's `description`), with an example code and message.
DESCRIPTIONS: dict[int, tuple[str, str, str]] = {
    400: ("Invalid request: the message names the offending parameter or body field and what is wrong with it",
          "invalid_argument", "query field `page_size`: Expected `int` <= 200"),
    401: ("Missing, malformed, unknown or revoked API key: the message says which",
          "unauthenticated", "missing API key: send `Authorization: Bearer <key>`"),
    402: ("The tenant's plan does not allow this call: its monthly limit is reached (upgrade the plan) or an "
          "invoice is unpaid", "payment_required",
          "monthly quota of the Free plan used up: 1000 of 1000 images this month; upgrade the plan"),
    403: ("The API key lacks the scope this call requires: the message names it",
          "permission_denied", "API key 0123456789abcdef lacks the `ml` scope this call requires"),
    404: ("Not found in the caller's tenant (e.g. no such model, version, tenant or key)",
          "not_found", "model 'my-model' not found"),
    409: ("Conflicts with the current state: it already exists, or a precondition does not hold",
          "already_exists", "a model named 'my-model' already exists"),
    413: ("The request body is larger than the gateway accepts: the message names the limit",
          "payload_too_large", "request body exceeds the limit of 20971520 bytes (20 MiB)"),
    422: ("The request is well-formed but cannot be used: the message names the field and what to fix",
          "unprocessable", "body field `definition.terms[0].metric`: unknown metric 'accuracy'; one of ..."),
    429: ("Too many requests: the API key's rate limit (see `Retry-After`) or a backend quota is used up",
          "rate_limited", "rate limit of 600 requests/minute exceeded for API key 0123456789abcdef; retry in 1 s"),
    501: ("Not implemented by the backend service yet", "unimplemented", "diffing is not available yet"),
    502: ("A backend service failed while handling the request",
          "bad_gateway", "an internal service failed: <what failed>"),
    503: ("A backend service is unavailable or did not answer in time: retry later",
          "unavailable", "a backend service is unavailable: <why>"),
}


def error_response_spec(status: int) -> ResponseSpec:
    """`ErrorResponse` as the body of `status`, described and with an example."""
    code = HTTP_CODES.get(status, f"http_{status}")
    description, code, message = DESCRIPTIONS.get(status, (f"Error {status}", code, "<what is wrong>"))
    example = {"error": {"code": code, "message": message, "request_id": "req_0123456789abcdef"}}
    return ResponseSpec(data_container=ErrorResponse, description=description, generate_examples=False,
                        examples=[Example(summary=code, value=example)])


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """`responses=` for a handler: an `ErrorResponse` for each of `statuses`."""
    return {status: error_response_spec(status) for status in sorted(statuses)}


def _takes_input(handler: HTTPRouteHandler, route: HTTPRoute) -> bool:
    """Whether Litestar validates anything of the request for this handler (path, query, header, body)."""
    if route.path_parameters:
        return True
    dependencies = handler.resolve_dependencies()
    names = set(handler.parsed_fn_signature.parameters)
    for name in names & set(dependencies):
        names |= set(dependencies[name].parsed_fn_signature.parameters)
    return "data" in names or bool(names - set(dependencies) - RESERVED_KWARGS)


def error_statuses(handler: HTTPRouteHandler, route: HTTPRoute) -> set[int]:
    """Every error status the gateway can answer `handler` with (see the module docstring)."""
    statuses: set[int] = set()
    if _takes_input(handler, route):
        statuses.add(400)
    if "data" in handler.parsed_fn_signature.parameters:
        statuses.add(413)
    if not handler.opt.get(PUBLIC):
        statuses |= {401, 429}
    if handler.resolve_guards():
        statuses.add(403)
    if BACKEND_DEPENDENCIES & set(handler.parsed_fn_signature.parameters):
        statuses |= BACKEND_STATUSES
    return statuses


class DocumentErrors(ReceiveRoutePlugin):
    """Attach `ErrorResponse` to every error status of every HTTP route as it is registered."""

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:  # copies made for this app: changing them is safe
            derived: dict[int, Any] = error_responses(*error_statuses(handler, route))
            handler.responses = dict(sorted({**derived, **(handler.responses or {})}.items()))


class ClosedStructs(OpenAPISchemaPlugin):
    """msgspec Structs with `forbid_unknown_fields=True`: Litestar's own schema plus `additionalProperties: false`."""

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        if field_definition.is_union or not field_definition.is_subclass_of(msgspec.Struct):
            return False
        info = msgspec.inspect.type_info(field_definition.type_)
        return isinstance(info, msgspec.inspect.StructType) and info.forbid_unknown_fields

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        struct_plugin = next(plugin for plugin in schema_creator.plugins
                             if plugin is not self and isinstance(plugin, OpenAPISchemaPlugin)
                             and plugin.is_plugin_supported_field(field_definition))
        schema = struct_plugin.to_openapi_schema(field_definition, schema_creator)
        schema.additional_properties = False
        return schema
