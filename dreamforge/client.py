"""The Python SDK: `DreamForge(api_key=...)` talks to a gateway over HTTP.

Every method maps to one documented REST call; errors raise `DreamForgeError`
carrying the gateway's status, code and message (which say what to fix).
"""

from __future__ import annotations

import base64
import os
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"


class DreamForgeError(Exception):
    def __init__(self, status: int, code: str, message: str, request_id: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


class DreamForge:
    def __init__(self, api_key: str | None = None, base_url: str | None = None, timeout_s: float = 30.0) -> None:
        key = api_key or os.environ.get("DREAMFORGE_API_KEY")
        if not key:
            raise ValueError("an API key is needed: pass api_key= or set DREAMFORGE_API_KEY")
        self.base_url = (base_url or os.environ.get("DREAMFORGE_URL") or DEFAULT_URL).rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s,
                                  headers={"Authorization": f"Bearer {key}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DreamForge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise DreamForgeError(response.status_code, error.get("code", ""), error.get("message", ""),
                                      error.get("request_id", ""))
            except (ValueError, KeyError, TypeError):
                raise DreamForgeError(response.status_code, "http_error", response.text[:500]) from None
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # -- identity, tenants and keys (admin) ---------------------------------------
    def whoami(self) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/whoami"))

    def create_tenant(self, name: str) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/admin/tenants", json={"name": name}))

    def list_tenants(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/admin/tenants")["tenants"])

    def create_key(self, tenant_id: str, scopes: list[str], name: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {"tenant_id": tenant_id, "scopes": scopes}
        if name:
            body["name"] = name
        return dict(self._call("POST", "/v1/admin/keys", json=body))

    def list_keys(self, tenant_id: str = "") -> list[dict[str, Any]]:
        params = {"tenant_id": tenant_id} if tenant_id else {}
        return list(self._call("GET", "/v1/admin/keys", params=params)["keys"])

    def revoke_key(self, key_id: str) -> None:
        self._call("DELETE", f"/v1/admin/keys/{key_id}")

    # -- models, versions, aliases, previews --------------------------------------
    def create_model(self, name: str, **fields: Any) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/models", json={"name": name, **fields}))

    def list_models(self, page_size: int = 50, page_token: str = "") -> dict[str, Any]:
        params: dict[str, Any] = {"page_size": page_size}
        if page_token:
            params["page_token"] = page_token
        return dict(self._call("GET", "/v1/models", params=params))

    def get_model(self, model: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/models/{model}"))

    def create_version(self, model: str, artifact: bytes | None = None, idempotency_key: str = "",
                       **fields: Any) -> dict[str, Any]:
        body = dict(fields)
        if artifact is not None:
            body["artifact_base64"] = base64.b64encode(artifact).decode()
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return dict(self._call("POST", f"/v1/models/{model}/versions", json=body, headers=headers))

    def list_versions(self, model: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/models/{model}/versions"))

    def promote(self, model: str, version: int, alias: str = "production") -> dict[str, Any]:
        return dict(self._call("POST", f"/v1/models/{model}/promote", json={"version": version, "alias": alias}))

    def rollback(self, model: str, alias: str = "production", to_version: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"alias": alias}
        if to_version:
            body["to_version"] = to_version
        return dict(self._call("POST", f"/v1/models/{model}/rollback", json=body))

    def aliases(self, model: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/v1/models/{model}/aliases")["aliases"])

    def create_preview(self, model: str, name: str, version: int) -> dict[str, Any]:
        return dict(self._call("POST", f"/v1/models/{model}/previews", json={"name": name, "version": version}))

    def diff(self, model: str, from_version: int, to_version: int) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/models/{model}/diff",
                               params={"from": from_version, "to": to_version}))

    def health(self) -> dict[str, Any]:
        response = self._http.get("/health")
        return dict(response.json())
