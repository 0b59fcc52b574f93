"""The Python SDK: `DreamForge(api_key=...)` talks to a gateway over HTTP.

Every method maps to one documented REST call; errors raise `DreamForgeError`
carrying the gateway's status, code and message (which say what to fix).

    df = DreamForge(api_key="df_...")
    df.caption("photo.jpg")["caption"]
    for piece in df.query(Image.open("photo.jpg"), "How many circles?", stream=True):
        print(piece, end="")
    df.detect(png_bytes, "red circle", model="shapes@staging")["objects"]
    df.chat("What is in the image?", "photo.jpg")["choices"][0]["message"]["content"]
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import httpx

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

#: What the skill methods take as an image: a PIL image, encoded bytes (JPEG/PNG/WebP), a file path,
#: or a `data:` URL / base64 string.
ImageInput: TypeAlias = "PILImage | bytes | str | os.PathLike[str]"

DEFAULT_URL = "http://127.0.0.1:8080"
#: Longest `Retry-After` the client sleeps through by itself; a longer one (a monthly quota) is raised at once.
MAX_RETRY_WAIT_S = 30.0


class DreamForgeError(Exception):
    def __init__(self, status: int, code: str, message: str, request_id: str = "") -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


class DreamForge:
    """`max_retries`: how often a call is sent again when that is safe — refused by the rate limit (429, after
    its `Retry-After`) or not connected at all — and, for reads and unary skill calls, after a 502/503/504 or a
    lost answer: each skill call carries its own `Idempotency-Key`, so the gateway answers a retry from the
    first call instead of serving (and billing) it twice. Streamed calls are not repeated once sent."""

    def __init__(self, api_key: str | None = None, base_url: str | None = None, timeout_s: float = 30.0,
                 max_retries: int = 2) -> None:
        key = api_key or os.environ.get("DREAMFORGE_API_KEY")
        if not key:
            raise ValueError("an API key is needed: pass api_key= or set DREAMFORGE_API_KEY")
        self.max_retries = max(0, max_retries)
        self.base_url = (base_url or os.environ.get("DREAMFORGE_URL") or DEFAULT_URL).rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s,
                                  headers={"Authorization": f"Bearer {key}"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DreamForge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _raise_for(response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        try:
            error = response.json()["error"]
            code, message, request_id = error.get("code", ""), error.get("message", ""), error.get("request_id", "")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DreamForgeError(response.status_code, "http_error", response.text[:500]) from None
        raise DreamForgeError(response.status_code, code, message, request_id)

    def _send(self, method: str, path: str, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        """Send one request, again after a pause while `retry_delay` says it is safe and worth it."""
        repeatable = method == "GET" or "Idempotency-Key" in (kwargs.get("headers") or {})
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            try:
                response = self._http.send(self._http.build_request(method, path, **kwargs), stream=stream)
            except httpx.TransportError as exc:
                # Not connected: nothing reached the gateway. Otherwise only a repeatable request may go again.
                if last or not (repeatable or isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))):
                    raise
                time.sleep(_backoff_s(attempt))
                continue
            delay = None if last else retry_delay(response, attempt, repeatable)
            if delay is None:
                return response
            response.close()
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _skill(self, path: str, body: dict[str, Any]) -> Any:
        """A unary skill call under a fresh `Idempotency-Key`, so a retry is answered, not served, again."""
        return self._call("POST", path, json=body, headers={"Idempotency-Key": f"sdk-{uuid.uuid4()}"})

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        self._raise_for(response)
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

    # -- skills ---------------------------------------------------------------------------
    # Each returns the gateway's JSON (`caption` / `answer` / `objects` / `points`, plus `request_id`,
    # `model`, `version`, `latency_ms`); with stream=True, caption and query return an iterator of text pieces.
    # `max_tokens` bounds a caption or answer, `max_objects` the boxes or points returned (Moondream's `settings`).
    def caption(self, image: ImageInput, length: str = "normal", model: str | None = None,
                stream: bool = False, max_tokens: int | None = None) -> Any:
        body = {"image_url": image_url(image), "length": length, **_model(model), **_settings(max_tokens=max_tokens)}
        if stream:
            return self._stream("/v1/caption", body)
        return dict(self._skill("/v1/caption", body))

    def query(self, image: ImageInput, question: str, model: str | None = None, stream: bool = False,
              max_tokens: int | None = None) -> Any:
        body = {"image_url": image_url(image), "question": question, **_model(model),
                **_settings(max_tokens=max_tokens)}
        if stream:
            return self._stream("/v1/query", body)
        return dict(self._skill("/v1/query", body))

    def detect(self, image: ImageInput, object: str, model: str | None = None,
               max_objects: int | None = None) -> dict[str, Any]:
        body = {"image_url": image_url(image), "object": object, **_model(model), **_settings(max_objects=max_objects)}
        return dict(self._skill("/v1/detect", body))

    def point(self, image: ImageInput, object: str, model: str | None = None,
              max_objects: int | None = None) -> dict[str, Any]:
        body = {"image_url": image_url(image), "object": object, **_model(model), **_settings(max_objects=max_objects)}
        return dict(self._skill("/v1/point", body))

    def chat(self, message: str | list[dict[str, Any]], image: ImageInput | None = None, model: str | None = None,
             stream: bool = False, max_tokens: int | None = None) -> Any:
        """A chat reply (`POST /v1/chat/completions`, OpenAI's shape): `message` is the user's words about
        `image`, or a whole OpenAI `messages` list (images as `image_url` parts). Returns the completion, the
        reply in `choices[0]["message"]["content"]`; with stream=True, an iterator of the reply's pieces."""
        if isinstance(message, str):
            content: list[dict[str, Any]] = [{"type": "text", "text": message}]
            if image is not None:
                content.insert(0, {"type": "image_url", "image_url": {"url": image_url(image)}})
            messages = [{"role": "user", "content": content}]
        elif image is not None:
            raise TypeError("pass image= with a str message; a messages list carries its images as image_url parts")
        else:
            messages = message
        body = {"model": model or "default", "messages": messages,
                **({"max_tokens": max_tokens} if max_tokens is not None else {})}
        if stream:
            return self._stream("/v1/chat/completions", body)
        return dict(self._skill("/v1/chat/completions", body))

    def compare(self, skill: str, image: ImageInput, models: list[str], **fields: Any) -> dict[str, Any]:
        """One call (`question=`, `object=` or `length=` as the skill needs) on several models, side by side."""
        body = {"skill": skill, "image_url": image_url(image), "models": models, **fields}
        return dict(self._skill("/v1/compare", body))

    def batch(self, calls: list[dict[str, Any]]) -> dict[str, Any]:
        """Several calls at once: each `{"skill", "image", "model"?, "question"?/"object"?/"length"?}`."""
        requests = [{k: v for k, v in c.items() if k != "image"} | {"image_url": image_url(c["image"])}
                    for c in calls]
        return dict(self._skill("/v1/batch", {"requests": requests}))

    # -- feedback and rewards ----------------------------------------------------
    def rate(self, request_id: str, kind: str, value: Any, *, other_request_id: str = "", comment: str = "",
             idempotency_key: str = "") -> dict[str, Any]:
        """Rate a served output: thumbs "up"/"down", score 1-5, pairwise (value = preferred request id,
        with other_request_id), correction (text) or flag ("wrong"/"unsafe"/"other")."""
        body: dict[str, Any] = {"request_id": request_id, "kind": kind, "value": value}
        if other_request_id:
            body["other_request_id"] = other_request_id
        if comment:
            body["comment"] = comment
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return dict(self._call("POST", "/v1/feedback", json=body, headers=headers))

    def next_to_rate(self, skill: str = "") -> dict[str, Any] | None:
        """The rater queue's next output for this key, or None when there is nothing left."""
        item = self._call("GET", "/v1/rater/queue/next", params={"skill": skill} if skill else {})["item"]
        return dict(item) if item is not None else None

    def create_reward_function(self, name: str, definition: dict[str, Any], active: bool = False) -> dict[str, Any]:
        return dict(self._call("POST", "/v1/reward-functions",
                               json={"name": name, "definition": definition, "active": active}))

    # -- training ---------------------------------------------------------------------------------
    def train(self, model: str, method: str = "grpo", reward_function: str | dict[str, Any] | None = None, *,
              config: dict[str, Any] | None = None, base_version: int = 0, reward_function_version: int = 0,
              idempotency_key: str = "") -> dict[str, Any]:
        """Queue a training job ("Retrain with this reward"): grpo needs a reward function (id or inline)."""
        body = {"model": model, "method": method, "reward_function": reward_function, "config": config or {},
                "base_version": base_version, "reward_function_version": reward_function_version}
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return dict(self._call("POST", "/v1/training/jobs", json=body, headers=headers))

    def training_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/v1/training/jobs/{job_id}"))

    def training_jobs(self, model: str = "", status: str = "") -> dict[str, Any]:
        params = {k: v for k, v in (("model", model), ("status", status)) if v}
        return dict(self._call("GET", "/v1/training/jobs", params=params))

    def cancel_training_job(self, job_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/v1/training/jobs/{job_id}/cancel"))

    def training_policy(self, model: str) -> dict[str, Any]:
        return dict(self._call("GET", "/v1/training/policy", params={"model": model}))

    def set_training_policy(self, model: str, **fields: Any) -> dict[str, Any]:
        """The online trigger: every_n_rewards, every_minutes, min_rewards, method, reward_function, config."""
        return dict(self._call("PUT", "/v1/training/policy", json={"model": model, **fields}))

    def score(self, outputs: list[dict[str, Any]], *, reward_function_id: str = "", version: int = 0,
              definition: dict[str, Any] | None = None, reference: dict[str, Any] | None = None) -> dict[str, Any]:
        """Per-term rewards of outputs (`{"request_id"}` or `{"skill", "prompt", "output"}` each)."""
        body: dict[str, Any] = {"outputs": outputs, "reward_function_id": reward_function_id, "version": version}
        if definition is not None:
            body["definition"] = definition
        if reference is not None:
            body["reference"] = reference
        return dict(self._call("POST", "/v1/rewards/score", json=body))

    # -- billing -------------------------------------------------------------------------
    def usage(self, start: str = "", end: str = "") -> dict[str, Any]:
        """The calling tenant's usage and cost (default: this calendar month, UTC)."""
        return dict(self._call("GET", "/v1/usage", params={"from": start, "to": end}))

    def usage_report(self, group_by: Sequence[str] | str = (), start: str = "", end: str = "", *, csv: bool = False,
                     tenant: str = "") -> Any:
        """Finance report (scope `finance`): the JSON report, or the RFC 4180 CSV text with csv=True."""
        params = {"group_by": group_by if isinstance(group_by, str) else ",".join(group_by), "from": start,
                  "to": end, "format": "csv" if csv else "json", "tenant": tenant}
        response = self._send("GET", "/v1/usage/report", params=params)
        self._raise_for(response)
        return response.text if csv else response.json()

    def quote(self, images_per_month: dict[str, int], plan: str = "") -> dict[str, Any]:
        """The monthly price of `images_per_month` (skill -> images) under `plan` (default: the tenant's)."""
        body: dict[str, Any] = {"images_per_month": images_per_month}
        if plan:
            body["plan"] = plan
        return dict(self._call("POST", "/v1/billing/quote", json=body))

    def plans(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/billing/plans")["plans"])

    def assign_plan(self, tenant_id: str, plan: str, effective_from: str = "") -> dict[str, Any]:
        """Put a tenant on a plan from now (or `effective_from`, ISO 8601) on; scope `admin`."""
        body = {"plan": plan, **({"effective_from": effective_from} if effective_from else {})}
        return dict(self._call("PUT", f"/v1/billing/tenants/{tenant_id}/plan", json=body))

    def _stream(self, path: str, body: dict[str, Any]) -> Iterator[str]:
        """The text pieces of a streamed caption, answer or chat reply (server-sent events)."""
        response = self._send("POST", path, stream=True, json={**body, "stream": True})
        try:
            if response.status_code >= 400:
                response.read()
                self._raise_for(response)
        except BaseException:
            response.close()
            raise

        def pieces() -> Iterator[str]:
            try:
                for line in response.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[len("data: "):]
                    if data == "[DONE]":  # OpenAI's end of stream
                        return
                    event = json.loads(data)
                    if "error" in event:
                        error = event["error"]
                        raise DreamForgeError(502, error.get("code", ""), error.get("message", ""),
                                              error.get("request_id", ""))
                    if event.get("chunk"):  # Moondream's shape
                        yield event["chunk"]
                    if event.get("completed"):
                        return
                    for choice in event.get("choices") or ():  # OpenAI's chat.completion.chunk
                        if (choice.get("delta") or {}).get("content"):
                            yield choice["delta"]["content"]
            finally:
                response.close()

        return pieces()


def retry_delay(response: httpx.Response, attempt: int, repeatable: bool) -> float | None:
    """Seconds to wait before sending `response`'s request again, or None not to. A 429 (the rate limit refused
    it; after `Retry-After` when that is at most MAX_RETRY_WAIT_S), and a 502/503/504 of a `repeatable` request:
    a read, or a call under an `Idempotency-Key` (the gateway answers a retry from the first call)."""
    running = repeatable and response.status_code == 409 and "Retry-After" in response.headers  # the keyed first call
    if response.status_code == 429 or running:
        header = response.headers.get("Retry-After", "")
        wait = float(header) if header.strip().isdigit() else _backoff_s(attempt)
        return wait if wait <= MAX_RETRY_WAIT_S else None
    if repeatable and response.status_code in (502, 503, 504):
        return _backoff_s(attempt)
    return None


def _backoff_s(attempt: int) -> float:
    return float(min(8.0, 0.5 * 2 ** attempt))


def _model(model: str | None) -> dict[str, str]:
    return {"model": model} if model else {}


def _settings(**given: int | None) -> dict[str, dict[str, int]]:
    settings = {name: value for name, value in given.items() if value is not None}
    return {"settings": settings} if settings else {}


def image_url(image: ImageInput) -> str:
    """A data URL or base64 string for the gateway, from a PIL image, bytes, a path, or a data URL/base64 string."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(image)).decode()
    if isinstance(image, str) and (image.startswith("data:") or len(image) > 1024):
        return image  # a data URL or base64 text (no image file path is that long)
    if isinstance(image, (str, os.PathLike)):
        return base64.b64encode(Path(image).read_bytes()).decode()
    if hasattr(image, "save"):  # a PIL image
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    raise TypeError(f"image must be a PIL image, bytes, a path or a data URL, not {type(image).__name__}")
