"""The REST API through a real uvicorn, against the real registry: authentication, scopes,
tenant isolation, rate limits, body limits, validation messages, request ids, and the
model lifecycle end to end."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest

from services.gateway.keys import parse_key
from tests.gateway.conftest import Account, Stack


def assert_error(reply: httpx.Response, status: int, *fragments: str) -> dict[str, str]:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["request_id"] == reply.headers["x-request-id"]
    for fragment in fragments:
        assert fragment in error["message"], (fragment, error["message"])
    return error  # type: ignore[no-any-return]


async def create_model(client: httpx.AsyncClient, name: str, **extra: object) -> dict[str, object]:
    reply = await client.post("/v1/models", json={"name": name, **extra})
    assert reply.status_code == 201, reply.text
    return reply.json()  # type: ignore[no-any-return]


# -- authentication and scopes -------------------------------------------------------------
async def test_missing_malformed_and_wrong_keys_are_401_saying_why(stack: Stack) -> None:
    async with stack.client() as c:
        assert_error(await c.get("/v1/models"), 401, "missing API key")
        assert_error(await c.get("/v1/models", headers={"Authorization": "Basic abc"}), 401, "Bearer")
        assert_error(await c.get("/v1/models", headers={"Authorization": "Bearer nope"}), 401, "malformed")
        wrong = f"df_{'0' * 16}_{'x' * 43}"
        reply = await c.get("/v1/models", headers={"Authorization": f"Bearer {wrong}"})
        assert_error(reply, 401, "unknown API key")
        assert reply.headers["www-authenticate"].startswith("Bearer")
        # a real key id with a wrong secret is just as unknown
        good = await stack.account()
        key_id, _secret = parse_key(good.key)
        forged = f"df_{key_id}_{'y' * 43}"
        assert_error(await c.get("/v1/models", headers={"Authorization": f"Bearer {forged}"}), 401, "unknown")


async def test_moondream_header_authenticates(stack: Stack) -> None:
    account = await stack.account()
    async with stack.client() as c:
        reply = await c.get("/v1/whoami", headers={"X-Moondream-Auth": account.key})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"tenant_id": account.tenant_id, "key_id": account.key_id, "scopes": ["app", "ml"]}


async def test_revoked_key_is_401_at_once(stack: Stack) -> None:
    account = await stack.account()
    async with stack.client(account) as c, stack.client(stack.admin) as admin:
        assert (await c.get("/v1/whoami")).status_code == 200
        assert (await admin.delete(f"/v1/admin/keys/{account.key_id}")).status_code == 204
        assert_error(await c.get("/v1/whoami"), 401, "revoked")
        listed = (await admin.get("/v1/admin/keys", params={"tenant_id": account.tenant_id})).json()["keys"]
        assert listed[0]["revoked_at"] is not None
        assert_error(await admin.delete("/v1/admin/keys/0000000000000000"), 404, "not found")


async def test_a_key_cannot_revoke_itself(stack: Stack) -> None:
    """Else an admin (or a fuzzer replaying ids from GET /v1/admin/keys) locks itself out."""
    async with stack.client(stack.admin) as admin:
        reply = await admin.delete(f"/v1/admin/keys/{stack.admin.key_id}")
        assert_error(reply, 409, "cannot revoke itself", "another admin key")
        assert (await admin.get("/v1/whoami")).status_code == 200


async def test_missing_scope_is_403_naming_it(stack: Stack) -> None:
    rater = await stack.account(scopes=("rater",))
    app_only = await stack.account(scopes=("app",))
    async with stack.client(rater) as c:
        assert_error(await c.get("/v1/models"), 403, "`app` or `ml`")
        assert_error(await c.get("/v1/admin/tenants"), 403, "`admin`")
    async with stack.client(app_only) as c:
        assert (await c.get("/v1/models")).status_code == 200
        assert_error(await c.post("/v1/models", json={"name": "m"}), 403, "`ml` scope")


async def test_admin_routes_create_tenants_and_keys_shown_once(stack: Stack) -> None:
    async with stack.client(stack.admin) as c:
        tenant = (await c.post("/v1/admin/tenants", json={"name": "acme-admin-test"})).json()
        assert tenant["id"].startswith("t_") and tenant["name"] == "acme-admin-test" and tenant["created_at"]
        assert_error(await c.post("/v1/admin/tenants", json={"name": "acme-admin-test"}), 409, "already exists")
        assert tenant in (await c.get("/v1/admin/tenants")).json()["tenants"]
        created = (await c.post("/v1/admin/keys", json={
            "tenant_id": tenant["id"], "scopes": ["finance"], "name": "books", "rate_limit_per_minute": 30})).json()
        assert created["key"].startswith(f"df_{created['id']}_")
        assert created["scopes"] == ["finance"] and created["name"] == "books"
        listed = (await c.get("/v1/admin/keys", params={"tenant_id": tenant["id"]})).json()["keys"]
        assert [k["id"] for k in listed] == [created["id"]]
        assert "key" not in listed[0] and created["key"] not in str(listed)
        assert_error(await c.post("/v1/admin/keys", json={"tenant_id": "t_missing", "scopes": ["app"]}), 404,
                     "t_missing")
        assert_error(await c.post("/v1/admin/keys", json={"tenant_id": tenant["id"], "scopes": ["root"]}), 400,
                     "scopes")
        assert_error(await c.post("/v1/admin/keys", json={"tenant_id": tenant["id"], "scopes": []}), 400,
                     "scopes")


# -- tenant isolation ----------------------------------------------------------------------
async def test_a_tenant_never_sees_another_tenants_model(stack: Stack) -> None:
    a, b = await stack.account(), await stack.account()
    async with stack.client(a) as ca, stack.client(b) as cb:
        model = await create_model(cb, "secret-model")
        assert_error(await ca.get("/v1/models/secret-model"), 404)
        assert_error(await ca.get(f"/v1/models/{model['id']}"), 404)
        assert_error(await ca.get(f"/v1/models/{model['id']}/versions"), 404)
        assert_error(await ca.delete(f"/v1/models/{model['id']}"), 404)
        assert [m["id"] for m in (await ca.get("/v1/models")).json()["models"]] == []
        assert [m["id"] for m in (await cb.get("/v1/models")).json()["models"]] == [model["id"]]
        # the same list in OpenAI's shape: the names a chat completion's `model` takes
        assert [m["id"] for m in (await ca.get("/v1/models")).json()["data"]] == ["default"]
        listed = (await cb.get("/v1/models")).json()
        assert listed["object"] == "list" and [m["id"] for m in listed["data"]] == ["default", "secret-model"]
        assert listed["data"][1]["owned_by"] == b.tenant_id and listed["data"][1]["created"] > 1_700_000_000
        # A may use the same name: names are per tenant
        own = await create_model(ca, "secret-model")
        assert own["id"] != model["id"] and own["tenant_id"] == a.tenant_id


# -- limits ----------------------------------------------------------------------------------
async def test_rate_limit_gives_429_with_retry_after(stack: Stack) -> None:
    account = await stack.account(rate_limit_per_minute=3)
    async with stack.client(account) as c:
        for _ in range(3):
            reply = await c.get("/v1/whoami")
            assert reply.status_code == 200
            assert reply.headers["x-ratelimit-limit"] == "3"
        reply = await c.get("/v1/whoami")
        assert_error(reply, 429, "rate limit of 3 requests/minute")
        assert 1 <= int(reply.headers["retry-after"]) <= 20
    # other keys are not affected
    async with stack.client(stack.admin) as c:
        assert (await c.get("/v1/whoami")).status_code == 200


async def test_oversized_body_is_413_naming_the_limit(stack: Stack) -> None:
    account = await stack.account()
    limit = stack.gateway.deps.settings.max_body_bytes
    async with stack.client(account) as c:
        body = b'{"name": "' + b"x" * limit + b'"}'
        reply = await c.post("/v1/models", content=body, headers={"Content-Type": "application/json"})
        assert_error(reply, 413, str(limit), "20 MiB")


# -- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "fragments"), [
    ('{"name": "m", "colour": "red"}', ("unknown field `colour`",)),
    ('{"name": 42}', ("`name`", "Expected `str`, got `int`")),
    ('{"name": "m", "tags": "a"}', ("`tags`", "Expected `array`")),
    ('{"name": "m"', ("malformed JSON",)),
    ('{}', ("missing required field `name`",)),
    ('{"name": ""}', ("`name`", "length")),
])
async def test_bad_bodies_are_400_naming_the_field(stack: Stack, body: str, fragments: tuple[str, ...]) -> None:
    account = await stack.account()
    async with stack.client(account) as c:
        reply = await c.post("/v1/models", content=body, headers={"Content-Type": "application/json"})
    assert_error(reply, 400, *fragments)


async def test_bad_query_and_path_parameters_are_400(stack: Stack) -> None:
    account = await stack.account()
    async with stack.client(account) as c:
        await create_model(c, "q-model")
        assert_error(await c.get("/v1/models", params={"page_size": "lots"}), 400, "`page_size`")
        assert_error(await c.get("/v1/models", params={"page_size": 0}), 400, "`page_size`")
        assert_error(await c.get("/v1/models/q-model/diff", params={"from": 1}), 400, "'to'")
        reply = await c.post("/v1/models/q-model/versions", json={"artifact_base64": "***"})
        assert_error(reply, 400, "`artifact_base64`")
        reply = await c.post("/v1/models/q-model/versions", json={"eval_metrics": {"iou": "high"}})
        assert_error(reply, 400, "eval_metrics")


async def test_unknown_model_and_route_are_404(stack: Stack) -> None:
    account = await stack.account()
    async with stack.client(account) as c:
        assert_error(await c.get("/v1/models/no-such-model"), 404, "no-such-model")
        assert_error(await c.get("/v1/models/no-such-model/versions/1"), 404)
        assert_error(await c.get("/v1/nothing-here"), 404, "no route")
        assert_error(await c.put("/v1/models"), 405)


async def test_every_response_has_a_request_id(stack: Stack) -> None:
    account = await stack.account()
    async with stack.client(account) as c:
        replies = [
            await c.get("/v1/whoami"), await c.get("/v1/models/none"), await c.get("/nope"),
            await c.get("/ready"), await c.get("/docs/openapi.json"),
            await c.post("/v1/models", content=b"{", headers={"Content-Type": "application/json"}),
        ]
        async with stack.client() as anonymous:
            replies.append(await anonymous.get("/v1/models"))
        ids = [r.headers["x-request-id"] for r in replies]
        assert all(i.startswith("req_") for i in ids) and len(set(ids)) == len(ids)
        own = (await c.get("/v1/whoami", headers={"X-Request-Id": "client-abc.1"})).headers
        assert own["x-request-id"].startswith("req_") and own["x-client-request-id"] == "client-abc.1"
        insane = await c.get("/v1/models/x", headers={"X-Request-Id": "bad id with spaces"})
        assert insane.headers["x-request-id"].startswith("req_") and "x-client-request-id" not in insane.headers
        assert insane.json()["error"]["request_id"] == insane.headers["x-request-id"]


# -- the registry, end to end -----------------------------------------------------------------
async def test_model_lifecycle_through_the_gateway(stack: Stack) -> None:
    ml = await stack.account()
    artifact = b"adapter-bytes" * 1000
    async with stack.client(ml) as c:
        model = await create_model(c, "captioner", tags=["vision"], description="d", parameter_count=2)
        assert model["created_at"].endswith(("Z", "+00:00")) and model["tags"] == ["vision"]
        assert (await c.get("/v1/models", params={"tag": "vision"})).json()["models"][0]["id"] == model["id"]
        assert (await c.get("/v1/models", params={"tag": "other"})).json()["models"] == []

        v1 = (await c.post("/v1/models/captioner/versions", json={
            "training_config": {"lr": 0.001}, "eval_metrics": {"iou": 0.5}, "notes": "first"})).json()
        headers = {"Idempotency-Key": "upload-2"}
        body = {"parent_version": 1, "artifact_base64": base64.b64encode(artifact).decode(),
                "training_config": {"lr": 0.002}, "reward_function": {"terms": ["iou"]}, "eval_metrics": {"iou": 0.7}}
        v2 = (await c.post("/v1/models/captioner/versions", json=body, headers=headers)).json()
        again = await c.post("/v1/models/captioner/versions", json=body, headers=headers)
        assert again.json()["version"] == v2["version"] == 2, again.text
        assert v1["version"] == 1 and v2["training_config"] == {"lr": 0.002}
        assert v2["artifact_sha256"] == hashlib.sha256(artifact).hexdigest()
        assert v2["artifact_bytes"] == len(artifact)
        assert [v["version"] for v in (await c.get("/v1/models/captioner/versions")).json()["versions"]] == [1, 2] \
            or [v["version"] for v in (await c.get("/v1/models/captioner/versions")).json()["versions"]] == [2, 1]
        assert (await c.get("/v1/models/captioner/versions/2")).json()["eval_metrics"] == {"iou": 0.7}

        promoted = await c.post("/v1/models/captioner/promote", json={"version": 1})
        assert promoted.status_code == 200 and promoted.json()["name"] == "production"
        assert (await c.post("/v1/models/captioner/promote", json={"version": 2})).json()["version"] == 2
        rolled = await c.post("/v1/models/captioner/rollback", json={})
        assert rolled.status_code == 200 and rolled.json()["version"] == 1
        aliases = (await c.get("/v1/models/captioner/aliases")).json()["aliases"]
        assert {(a["name"], a["version"]) for a in aliases} == {("production", 1)}
        history = (await c.get("/v1/models/captioner/aliases/production/history")).json()["changes"]
        assert len(history) == 3

        preview = await c.post("/v1/models/captioner/previews", json={"name": "try-v2", "version": 2})
        assert preview.status_code == 201 and preview.json()["is_preview"] is True
        resolved = (await c.get("/v1/resolve", params={"reference": "captioner@try-v2"})).json()
        assert resolved["version"]["version"] == 2 and resolved["is_preview"] is True
        assert (await c.get("/v1/resolve", params={"reference": "captioner"})).json()["version"]["version"] == 1
        assert (await c.delete("/v1/models/captioner/previews/try-v2")).status_code == 204

        diff = (await c.get("/v1/models/captioner/diff", params={"from": 1, "to": 2})).json()
        assert diff["from"]["version"] == 1 and diff["to"]["version"] == 2
        assert any("lr" in change["field"] for change in diff["changes"])

        assert (await c.delete("/v1/models/captioner")).status_code == 204
        assert_error(await c.get("/v1/models/captioner"), 404)


async def test_artifact_download_streams_the_bytes(stack: Stack) -> None:
    ml = await stack.account()
    artifact = bytes(range(256)) * 5000  # > 1 MiB: several chunks from the registry
    async with stack.client(ml) as c:
        await create_model(c, "with-artifact")
        version = (await c.post("/v1/models/with-artifact/versions", json={
            "artifact_base64": base64.b64encode(artifact).decode()})).json()
        download = await c.get("/v1/models/with-artifact/versions/1/artifact")
        assert download.status_code == 200, download.text
        assert download.content == artifact
        assert download.headers["x-artifact-sha256"] == version["artifact_sha256"]
        assert download.headers["content-type"] == "application/octet-stream"
        assert_error(await c.get("/v1/models/with-artifact/versions/9/artifact"), 404)
    other = await stack.account()
    async with stack.client(other) as c:
        assert_error(await c.get(f"/v1/models/{version['model_id']}/versions/1/artifact"), 404)


async def test_openapi_document_is_public_and_complete(stack: Stack) -> None:
    async with stack.client() as c:
        reply = await c.get("/docs/openapi.json")
        assert reply.status_code == 200
        doc = reply.json()
        assert (await c.get("/docs")).status_code == 200
    assert doc["info"]["title"] == "DreamForge API"
    operations = [op for path in doc["paths"].values() for op in path.values()]
    assert len(operations) >= 24
    assert all(op.get("operationId") and op.get("summary") and op.get("tags") for op in operations)


async def test_whoami_for_account(stack: Stack) -> None:
    account: Account = await stack.account(scopes=("finance",))
    async with stack.client(account) as c:
        assert (await c.get("/v1/whoami")).json()["scopes"] == ["finance"]
