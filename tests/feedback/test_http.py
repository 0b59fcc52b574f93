"""The feedback, rater and reward routes through the real gateway (HTTP, keys, scopes, error mapping)
and the real feedback service; outputs arrive as inference publishes them."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dreamforge.infra import ManagedService, free_port
from services.feedback.main import build as build_feedback
from services.feedback.settings import FeedbackSettings
from services.gateway.main import build as build_gateway
from services.gateway.settings import GatewaySettings
from tests.feedback.conftest import serve
from tests.helpers import eventually, running_service


@dataclass
class Api:
    base_url: str
    admin: str
    nats_url: str

    def client(self, key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10)

    async def key(self, tenant_id: str, *scopes: str) -> str:
        async with self.client(self.admin) as c:
            r = await c.post("/v1/admin/keys", json={"tenant_id": tenant_id, "scopes": list(scopes)})
            assert r.status_code == 201, r.text
            return str(r.json()["key"])

    async def tenant(self) -> str:
        async with self.client(self.admin) as c:
            r = await c.post("/v1/admin/tenants", json={"name": f"t-{secrets.token_hex(4)}"})
            assert r.status_code == 201, r.text
            return str(r.json()["id"])


@pytest.fixture
async def api(nats_url: str, redis_server: ManagedService, tmp_path: Path) -> AsyncIterator[Api]:
    feedback_settings = FeedbackSettings(home=tmp_path / "feedback", nats_url=nats_url, log_format="text")
    async with running_service("feedback", build_feedback, feedback_settings) as feedback:
        settings = GatewaySettings(
            home=tmp_path / "gateway", nats_url=nats_url, redis_url=redis_server.url, log_format="text",
            gateway_http_port=0, gateway_grpc_port=free_port(), feedback_addr=f"127.0.0.1:{feedback.port}")
        async with running_service("gateway", build_gateway, settings) as gateway:
            admin = (settings.home / "admin-key").read_text().strip()
            yield Api(f"http://127.0.0.1:{gateway.state.http.port}", admin, nats_url)


async def _served(api: Api, key: str, request_id: str) -> bool:
    async with api.client(key) as c:
        return (await c.get(f"/v1/feedback/outputs/{request_id}")).status_code == 200


async def test_ratings_and_reward_functions_over_http(api: Api) -> None:
    tenant, other = await api.tenant(), await api.tenant()
    app, rater, ml = await api.key(tenant, "app"), await api.key(tenant, "rater"), await api.key(tenant, "ml")
    outsider = await api.key(other, "app", "rater")
    await serve(api.nats_url, tenant, "req_h1", output="red")
    await serve(api.nats_url, tenant, "req_h2", output="blue")
    await eventually(lambda: _served(api, app, "req_h2"))

    async with api.client(rater) as c:
        r = await c.post("/v1/feedback", json={"request_id": "req_h1", "kind": "score", "value": 4},
                         headers={"Idempotency-Key": "once"})
        assert r.status_code == 201, r.text
        assert r.headers["X-Request-Id"]
        first = r.json()
        again = await c.post("/v1/feedback", json={"request_id": "req_h1", "kind": "score", "value": 4},
                             headers={"Idempotency-Key": "once"})
        assert again.json()["id"] == first["id"]
        dup = await c.post("/v1/feedback", json={"request_id": "req_h1", "kind": "score", "value": 2})
        assert dup.status_code == 409 and first["id"] in dup.json()["error"]["message"]
        bad = await c.post("/v1/feedback", json={"request_id": "req_h1", "kind": "score", "value": 9})
        assert bad.status_code == 400 and "1 to 5" in bad.json()["error"]["message"]
        assert bad.json()["error"]["request_id"] == bad.headers["X-Request-Id"]
        unknown_kind = await c.post("/v1/feedback", json={"request_id": "req_h1", "kind": "stars", "value": 1})
        assert unknown_kind.status_code == 400 and "`kind`" in unknown_kind.json()["error"]["message"]
        edited = await c.put(f"/v1/feedback/{first['id']}", json={"value": 5})
        assert (edited.status_code, edited.json()["value"], edited.json()["revision"]) == (200, 5, 2)
        mine = await c.get("/v1/feedback", params={"mine": "true"})
        assert [f["id"] for f in mine.json()["feedback"]] == [first["id"]]
        item = (await c.get("/v1/rater/queue/next")).json()
        assert item["item"]["request_id"] == "req_h2" and item["remaining"] == 0  # req_h1 is already rated
        assert (await c.get("/v1/rater/queue/next")).json()["item"] is None
    async with api.client(app) as c:
        assert (await c.get("/v1/rater/queue/next")).status_code == 403  # needs the rater scope
        pair = await c.post("/v1/feedback", json={"request_id": "req_h1", "kind": "pairwise", "value": "req_h2",
                                                  "other_request_id": "req_h2"})
        assert pair.status_code == 201, pair.text
        listed = await c.get("/v1/feedback", params={"request_id": "req_h1"})
        assert len(listed.json()["feedback"]) == 2
        assert (await c.delete(f"/v1/feedback/{first['id']}")).status_code == 403  # another rater's rating
    async with api.client(outsider) as c:
        refused = await c.post("/v1/feedback", json={"request_id": "req_h1", "kind": "thumbs", "value": "up"})
        assert refused.status_code == 404
        assert (await c.get("/v1/feedback", params={"request_id": "req_h1"})).json()["feedback"] == []
    async with api.client(rater) as c:
        gone = await c.delete(f"/v1/feedback/{first['id']}")
        assert gone.status_code == 200 and gone.json()["withdrawn"]

    # reward functions: validated with 422s naming the field; versions stay readable
    async with api.client(ml) as c:
        cases: list[tuple[dict[str, Any], str]] = [
            ({"terms": [{"metric": "accuracy", "weight": 1}]}, "`definition.terms[0].metric`"),
            ({"terms": [{"metric": "bleu", "weight": 1}, {"metric": "bleu", "weight": "x", "name": "b2"}]},
             "`definition.terms[1].weight`"),
            ({"terms": [{"metric": "keyword_mention", "weight": 1}]}, "`definition.terms[0].params.keywords`"),
            ({"terms": [{"metric": "bleu", "weight": 1, "direction": "up"}]}, "`definition.terms[0].direction`"),
        ]
        for definition, field in cases:
            r = await c.post("/v1/reward-functions", json={"name": "bad", "definition": definition})
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == "unprocessable" and field in r.json()["error"]["message"]
        v1 = await c.post("/v1/reward-functions", json={"name": "acc", "definition": {
            "terms": [{"metric": "exact_match", "weight": 1.0}]}})
        assert v1.status_code == 201, v1.text
        rf = v1.json()["id"]
        v2 = await c.post(f"/v1/reward-functions/{rf}/versions", json={"definition": {
            "terms": [{"metric": "token_f1", "weight": 2.0}]}, "active": True})
        assert (v2.status_code, v2.json()["version"], v2.json()["name"]) == (201, 2, "acc")
        old = await c.get(f"/v1/reward-functions/{rf}/versions/1")
        assert old.json()["definition"]["terms"][0]["metric"] == "exact_match"
        assert [v["version"] for v in (await c.get(f"/v1/reward-functions/{rf}/versions")).json()["functions"]] \
            == [1, 2]
        bad_version = await c.post(f"/v1/reward-functions/{rf}/versions", json={"definition": {"terms": []}})
        assert bad_version.status_code == 422 and "`definition.terms`" in bad_version.json()["error"]["message"]
        scored = await c.post("/v1/rewards/score", json={
            "reward_function_id": rf, "version": 1, "reference": {"answer": "red"},
            "outputs": [{"request_id": "req_h1"}, {"request_id": "req_h2"},
                        {"skill": "query", "prompt": "what colour?", "output": "Red."}]})
        assert scored.status_code == 200, scored.text
        assert [s["reward"] for s in scored.json()["scores"]] == [1.0, 0.0, 1.0]
        live = await c.post("/v1/rewards/score", json={
            "definition": {"terms": [{"metric": "keyword_mention", "weight": 1, "params": {"keywords": ["blue"]}}]},
            "outputs": [{"request_id": "req_h2"}]})
        assert live.json()["scores"][0]["terms"] == {"keyword_mention": 1.0}
        metrics = (await c.get("/v1/reward-metrics")).json()["metrics"]
        assert {"exact_match", "bleu", "detection_iou", "human_rating"} <= {m["name"] for m in metrics}
        assert (await c.get("/v1/rater/agreement")).status_code == 200


async def test_data_rights_over_http(api: Api) -> None:
    tenant = await api.tenant()
    app = await api.key(tenant, "app")
    await serve(api.nats_url, tenant, "req_d1")
    await eventually(lambda: _served(api, app, "req_d1"))
    async with api.client(app) as c:
        assert (await c.post("/v1/feedback", json={"request_id": "req_d1", "kind": "thumbs", "value": "up"})
                ).status_code == 201
        assert (await c.get("/v1/feedback/data/export")).status_code == 403
    async with api.client(api.admin) as c:
        put = await c.put("/v1/feedback/data/settings", params={"tenant_id": tenant},
                          json={"retention_days": 30, "queue_overlap": 3})
        assert put.json() == {"retention_days": 30, "queue_overlap": 3}
        export = await c.get("/v1/feedback/data/export", params={"tenant_id": tenant})
        assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(x) for x in export.text.splitlines()]
        assert [x["type"] for x in lines] == ["settings", "output", "feedback"]
        assert lines[2]["data"]["value"] == "up"
        deleted = await c.delete("/v1/feedback/data", params={"tenant_id": tenant})
        assert (deleted.json()["outputs"], deleted.json()["feedback"]) == (1, 1)
        after = await c.get("/v1/feedback/data/export", params={"tenant_id": tenant})
        assert [json.loads(x)["type"] for x in after.text.splitlines()] == ["settings"]
        bad = await c.post("/v1/feedback/data/purge", params={"tenant_id": "no such tenant!"})
        assert bad.status_code == 400 and "tenant_id" in bad.json()["error"]["message"]


async def test_sdk_rates_and_scores(api: Api) -> None:
    from dreamforge.client import DreamForge, DreamForgeError

    tenant = await api.tenant()
    key = await api.key(tenant, "app", "rater", "ml")
    await serve(api.nats_url, tenant, "req_sdk", output="3")
    await eventually(lambda: _served(api, key, "req_sdk"))

    def use_sdk() -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any], str]:
        with DreamForge(api_key=key, base_url=api.base_url) as df:
            rating = df.rate("req_sdk", "thumbs", "up", idempotency_key="sdk-1")
            item = df.next_to_rate()
            rf = df.create_reward_function("sdk", {"terms": [{"metric": "exact_match", "weight": 1}]})
            scored = df.score([{"request_id": "req_sdk"}], reward_function_id=rf["id"], reference={"answer": "3"})
            try:
                df.create_reward_function("bad", {"terms": [{"metric": "exact_match", "weight": 0}]})
                error = ""
            except DreamForgeError as exc:
                error = f"{exc.status} {exc}"
            return rating, item, scored, error

    rating, item, scored, error = await asyncio.to_thread(use_sdk)
    assert rating["kind"] == "thumbs" and item is None  # the only output is already rated by this key
    assert scored["scores"][0]["reward"] == 1.0
    assert error.startswith("422") and "definition.terms[0].weight" in error
