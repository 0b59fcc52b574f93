"""Key format, scopes, tenant ids and the Caller a principal becomes."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from litestar.enums import ScopeType
from litestar.exceptions import PermissionDeniedException
from litestar.utils.sync import ensure_async_callable

from dreamforge.events import MODEL_UPDATED
from services.gateway.auth import key_from_scope, requires, to_caller
from services.gateway.keys import Principal, Unauthenticated, hash_secret, new_tenant_id, parse_key


def test_parse_key_accepts_only_the_df_format() -> None:
    assert parse_key("df_0123456789abcdef_abc-DEF_ghi123456789012345") == (
        "0123456789abcdef", "abc-DEF_ghi123456789012345")
    for bad in ["", "df_", "sk_0123456789abcdef_" + "x" * 30, "df_XYZ_" + "x" * 30, "df_0123456789abcdef_short",
                "df_0123456789abcdef_" + "x" * 30 + " extra"]:
        with pytest.raises(Unauthenticated, match="malformed"):
            parse_key(bad)


def test_admin_implies_every_scope() -> None:
    admin = Principal("t_1", "k", frozenset({"admin"}))
    app = Principal("t_1", "k", frozenset({"app"}))
    assert all(admin.has_scope(s) for s in ("app", "rater", "ml", "finance", "admin"))
    assert app.has_scope("app") and not app.has_scope("ml") and not app.has_scope("admin")


def test_tenant_ids_are_nats_subject_tokens() -> None:
    ids = {new_tenant_id() for _ in range(100)}
    assert len(ids) == 100
    for tenant_id in ids:
        assert tenant_id.startswith("t_")
        assert MODEL_UPDATED.subject(tenant_id).endswith(f".{tenant_id}")


def test_secret_hash_is_sha256_hex() -> None:
    assert hash_secret("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_caller_carries_tenant_key_and_scopes() -> None:
    caller = to_caller(Principal("t_1", "k1", frozenset({"ml", "app"})))
    assert (caller.tenant_id, caller.key_id, list(caller.scopes)) == ("t_1", "k1", ["app", "ml"])


def scope(headers: dict[str, str], kind: str = ScopeType.HTTP, query: str = "") -> dict[str, object]:
    return {"type": kind, "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "query_string": query.encode()}


def test_key_sources() -> None:
    assert key_from_scope(scope({"Authorization": "Bearer  k1 "})) == "k1"  # type: ignore[arg-type]
    assert key_from_scope(scope({"authorization": "bearer k2"})) == "k2"  # type: ignore[arg-type]
    assert key_from_scope(scope({"X-Moondream-Auth": "k3"})) == "k3"  # type: ignore[arg-type]
    assert key_from_scope(scope({}, ScopeType.WEBSOCKET, "api_key=k4&types=x")) == "k4"  # type: ignore[arg-type]
    with pytest.raises(Unauthenticated, match="missing"):
        key_from_scope(scope({}, ScopeType.HTTP, "api_key=k4"))  # type: ignore[arg-type]  # query keys: WS only
    with pytest.raises(Unauthenticated, match="Bearer"):
        key_from_scope(scope({"Authorization": "Token k5"}))  # type: ignore[arg-type]


async def test_a_scope_guard_runs_on_the_event_loop_and_refuses_keys_without_the_scope() -> None:
    guard = requires("ml", "finance")
    assert ensure_async_callable(guard) is guard  # a synchronous guard would cost a worker-thread hop per request

    def connection(*scopes: str) -> Any:
        return SimpleNamespace(scope={"type": ScopeType.HTTP, "user": Principal("t_1", "k1", frozenset(scopes))})

    await guard(connection("finance"), None)  # type: ignore[arg-type]
    await guard(connection("admin"), None)  # type: ignore[arg-type]
    with pytest.raises(PermissionDeniedException, match="lacks the `ml` or `finance` scope"):
        await guard(connection("app"), None)  # type: ignore[arg-type]
