"""Billing through the gateway's HTTP API (real gateway, real billing, real NATS/Redis/SQLite):
scopes and tenant isolation of reports, the CSV a spreadsheet opens (RFC 4180, header row,
ISO dates), a quote that agrees with the report, quota refusals (402/429) before a skill call
reaches inference, signed Stripe webhooks, and 400s that name the field."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from dreamforge.client import DreamForge
from dreamforge.infra import free_port
from services.billing.main import build as build_billing
from services.gateway.main import build as build_gateway
from services.gateway.settings import GatewaySettings
from tests.billing.conftest import Publisher, usage
from tests.billing.fake_stripe import FakeStripe, sign_webhook
from tests.billing.test_service import SECRET, settings
from tests.gateway.conftest import running_on
from tests.helpers import eventually, running_service

IMAGE = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR42mP8z4AdMDEMKQkAzUEBD7"
         "t4NqoAAAAASUVORK5CYII=")


@dataclass
class Site:
    url: str
    admin: dict[str, str]
    nats_url: str

    def client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)

    async def key(self, tenant: str, *scopes: str) -> dict[str, str]:
        async with self.client(self.admin) as c:
            reply = await c.post("/v1/admin/keys", json={"tenant_id": tenant, "scopes": list(scopes)})
            assert reply.status_code == 201, reply.text
            return {"Authorization": f"Bearer {reply.json()['key']}"}

    async def tenant(self) -> str:
        async with self.client(self.admin) as c:
            reply = await c.post("/v1/admin/tenants", json={"name": f"t-{free_port()}"})
            assert reply.status_code == 201, reply.text
            return str(reply.json()["id"])


@pytest.fixture
async def site(nats_url: str, redis_url: str, fake_stripe: FakeStripe, tmp_path: Path) -> AsyncIterator[Site]:
    async with running_service("billing", build_billing, settings(tmp_path / "billing", nats_url, redis_url,
                                                                   fake_stripe.url)) as billing:
        gw = GatewaySettings(home=tmp_path / "gateway", nats_url=nats_url, redis_url=redis_url, log_format="text",
                             gateway_http_port=0, gateway_grpc_port=free_port(),
                             registry_addr=f"127.0.0.1:{free_port()}", inference_addr=f"127.0.0.1:{free_port()}",
                             billing_addr=f"127.0.0.1:{billing.port}")
        async with running_on("gateway", build_gateway, gw, gw.gateway_grpc_port) as runtime:
            admin_key = (gw.home / "admin-key").read_text().strip()
            yield Site(f"http://127.0.0.1:{runtime.state.http.port}", {"Authorization": f"Bearer {admin_key}"},
                       nats_url)


def error(reply: httpx.Response, status: int, *fragments: str) -> None:
    assert reply.status_code == status, reply.text
    message = reply.json()["error"]["message"]
    for fragment in fragments:
        assert fragment in message, (fragment, message)


async def test_reports_scopes_isolation_csv_quote_quota_and_webhook(site: Site) -> None:
    a, b = await site.tenant(), await site.tenant()
    a_app, a_fin, b_fin, b_app = (await site.key(a, "app"), await site.key(a, "finance"), await site.key(b, "finance"),
                                  await site.key(b, "app"))
    async with site.client(site.admin) as admin:
        hand = {"name": "Hand", "included_images": {"caption": 3},
                "unit_price_minor_units": {"caption": 5, "query": 7}, "hard_limit_images": 9, "limit_status": 429}
        assert (await admin.put("/v1/billing/plans/hand", json=hand)).status_code == 200
        tight = {"name": "Tight", "hard_limit_images": 2, "limit_status": 402}
        assert (await admin.put("/v1/billing/plans/tight", json=tight)).status_code == 200
        for tenant, plan in ((a, "hand"), (b, "tight")):
            reply = await admin.put(f"/v1/billing/tenants/{tenant}/plan", json={"plan": plan})
            assert reply.status_code == 200 and reply.json()["current"]["id"] == plan, reply.text
        error(await admin.put(f"/v1/billing/tenants/{a}/plan", json={"plan": "payg",
                                                                     "effective_from": "2020-01-01T00:00:00Z"}),
              400, "retroactively")
    now = datetime.now(UTC)
    async with Publisher(site.nats_url) as pub:
        for i, ms in enumerate((10.0, 20.0, 30.0, 40.0, 50.0)):
            await pub.publish(usage(a, f"{a}-c{i}:usage", "caption", latency_ms=ms, when=now))
        for i in range(3):
            await pub.publish(usage(a, f"{a}-q{i}:usage", "query", latency_ms=5.0, when=now, model="mdl, \"x\""))
        for i in range(2):
            await pub.publish(usage(b, f"{b}-c{i}:usage", "caption", when=now))

    async with site.client(a_fin) as fin:
        async def a_requests() -> bool:
            reply = await fin.get("/v1/usage/report")
            return reply.status_code == 200 and reply.json()["totals"]["requests"] == 8
        await eventually(a_requests, timeout_s=20)
        reply = await fin.get("/v1/usage/report", params={"group_by": "tenant,skill,day", "format": "json"})
        body = reply.json()
        assert {r["group"]["tenant"] for r in body["rows"]} == {a}
        by_skill = {r["group"]["skill"]: r for r in body["rows"]}
        # 5 captions, 3 free, 2 x 5 = 10; 3 queries x 7 = 21
        assert (by_skill["caption"]["cost_minor_units"], by_skill["query"]["cost_minor_units"]) == (10, 21)
        assert (by_skill["caption"]["latency_p50_ms"], by_skill["caption"]["latency_p95_ms"]) == (30.0, 50.0)
        assert body["totals"]["cost_minor_units"] == 31 and body["currency"] == "usd"
        error(await fin.get("/v1/usage/report", params={"tenant": b}), 403, "admin")
        error(await fin.get("/v1/usage/report", params={"group_by": "tenant,planet"}), 400, "group_by", "planet")
        error(await fin.get("/v1/usage/report", params={"from": "yesterday"}), 400, "`from`")

        text = (await fin.get("/v1/usage/report", params={"group_by": "model,day", "format": "csv"})).text
        assert text.endswith("\r\n") and "\r\n" in text.rstrip("\r\n")
        table = list(csv.reader(io.StringIO(text, newline="")))
        assert table[0][:3] == ["model", "day", "requests"] and table[0][-1] == "currency"
        assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", row[1]) for row in table[1:])
        assert {row[0] for row in table[1:]} == {"mdl_1", 'mdl, "x"'}          # quoted field survives
        cost = table[0].index("cost_minor_units")
        assert sum(int(row[cost]) for row in table[1:]) == 31

        quote = (await fin.post("/v1/billing/quote", json={"images_per_month": {"caption": 5, "query": 3}})).json()
        assert (quote["plan"], quote["total_minor_units"], quote["within_limit"]) == ("hand", 31, True)
        usage_now = (await fin.get("/v1/usage")).json()
        assert (usage_now["requests"], usage_now["cost_minor_units"], usage_now["plan"]) == (8, 31, "hand")
        # latencies [5, 5, 5, 10, 20, 30, 40, 50]: nearest rank p50 is the 4th, p95 the 8th
        assert (usage_now["latency_p50_ms"], usage_now["latency_p95_ms"]) == (10.0, 50.0)
        assert [(r["group"], r["requests"], r["cost_minor_units"], r["latency_p50_ms"]) for r in usage_now[
            "skills"]] == [({"skill": "caption"}, 5, 10, 30.0), ({"skill": "query"}, 3, 21, 5.0)]
        # the SDK: same figures
        sdk = DreamForge(api_key=a_fin["Authorization"].split()[1], base_url=site.url)
        try:
            assert (await asyncio.to_thread(sdk.quote, {"caption": 5, "query": 3}))["total_minor_units"] == 31
            assert (await asyncio.to_thread(sdk.usage))["cost_minor_units"] == 31
            sdk_csv = await asyncio.to_thread(lambda: sdk.usage_report(["skill"], csv=True))
            assert sdk_csv.splitlines()[0].startswith("skill,requests,images")
        finally:
            sdk.close()

    async with site.client(a_app) as app:
        error(await app.get("/v1/usage/report"), 403, "`finance`")
        assert (await app.get("/v1/usage")).json()["tenant_id"] == a
        # a has 8 of 9 images: one more is admitted (and fails later, as no inference runs here) ...
        first = await app.post("/v1/caption", json={"image_url": IMAGE})
        assert first.status_code not in (402, 429), first.text
        # ... but not two: a chat with two images would make 10 of 9 -> 429 until the month resets
        two = [{"type": "image_url", "image_url": {"url": IMAGE}}] * 2
        chat = await app.post("/v1/chat/completions", json={"model": "default", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "compare"}, *two]}]})
        error(chat, 429, "Hand plan", "8 of 9 images", "resets on")
        assert int(chat.headers["retry-after"]) > 0 and chat.json()["error"]["code"] == "quota_exceeded"
    async with site.client(b_fin) as fin:
        assert {r["group"]["tenant"] for r in (await fin.get("/v1/usage/report?group_by=tenant")).json()["rows"]} \
            == {b}
    async with site.client(b_app) as app:
        # ... b has used its 2 images: refused before inference, with what to do about it
        await eventually(lambda: _refused(app), timeout_s=10)
        error(await app.post("/v1/query", json={"image_url": IMAGE, "question": "what?"}), 402,
              "monthly quota", "2 of 2 images", "upgrade")

    async with site.client() as anyone:
        event = json.dumps({"id": "evt_9", "object": "event", "type": "invoice.paid",
                            "data": {"object": {"id": "in_9", "object": "invoice"}}})
        error(await anyone.post("/v1/billing/stripe/webhook", content=event,
                                headers={"Stripe-Signature": sign_webhook(event, "whsec_other")}), 400,
              "Stripe-Signature")
        ok = await anyone.post("/v1/billing/stripe/webhook", content=event,
                               headers={"Stripe-Signature": sign_webhook(event, SECRET)})
        assert ok.status_code == 200 and ok.json() == {"received": True, "event_id": "evt_9",
                                                       "type": "invoice.paid", "duplicate": False}


async def _refused(client: httpx.AsyncClient) -> bool:
    reply = await client.post("/v1/caption", json={"image_url": IMAGE})
    return reply.status_code == 402
