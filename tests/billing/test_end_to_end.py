"""Served requests are billed: a caption through the gateway reaches inference (the real default
model or a tiny one), inference's outbox publishes `usage.recorded`, billing prices it, and
`GET /v1/usage` and the finance report show it: each served request once, also when the client
sends its own `X-Request-Id` twice (the gateway names outputs; a reused client id must not make
a second answer free)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dreamforge.infra import free_port
from services.billing.main import build as build_billing
from services.gateway.main import build as build_gateway
from services.gateway.settings import GatewaySettings
from services.inference.main import build as build_inference
from services.inference.settings import InferenceSettings
from services.registry.main import build as build_registry
from tests.billing.fake_stripe import FakeStripe
from tests.billing.test_gateway import IMAGE
from tests.billing.test_service import settings
from tests.gateway.conftest import ServingModel, running_on, serving_model
from tests.helpers import eventually, platform_settings, running_service

__all__ = ["serving_model"]   # the session fixture, shared with the gateway's tests


async def test_each_served_caption_is_billed_once(nats_url: str, redis_url: str, fake_stripe: FakeStripe,
                                              tmp_path: Path, serving_model: ServingModel) -> None:
    if serving_model.path is None:
        pytest.skip("torch is not installed: no model can serve a caption")
    import httpx

    async with running_service("registry", build_registry, platform_settings(tmp_path / "r", nats_url)) as registry, \
            running_service("inference", build_inference, InferenceSettings(
                home=tmp_path / "i", nats_url=nats_url, log_format="text", default_model=serving_model.path,
                registry_addr=f"127.0.0.1:{registry.port}")) as inference, \
            running_service("billing", build_billing, settings(tmp_path / "b", nats_url, redis_url,
                                                               fake_stripe.url)) as billing:
        gw = GatewaySettings(home=tmp_path / "g", nats_url=nats_url, redis_url=redis_url, log_format="text",
                             gateway_http_port=0, gateway_grpc_port=free_port(),
                             registry_addr=f"127.0.0.1:{registry.port}", inference_addr=f"127.0.0.1:{inference.port}",
                             billing_addr=f"127.0.0.1:{billing.port}")
        async with running_on("gateway", build_gateway, gw, gw.gateway_grpc_port) as runtime:
            admin = {"Authorization": f"Bearer {(gw.home / 'admin-key').read_text().strip()}"}
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{runtime.state.http.port}", headers=admin,
                                         timeout=60) as c:
                for _ in range(2):   # served twice: billed twice, whatever id the client sends
                    reply = await c.post("/v1/caption", json={"image_url": IMAGE},
                                         headers={"X-Request-Id": "my-id"})
                    assert reply.status_code == 200, reply.text

                async def billed() -> bool:
                    usage = (await c.get("/v1/usage")).json()
                    return usage["requests"] >= 2

                await eventually(billed, timeout_s=30)
                usage = (await c.get("/v1/usage")).json()
                assert (usage["requests"], usage["images"], usage["cost_minor_units"], usage["plan"]) == (
                    2, 2, 4, "payg")
                report = (await c.get("/v1/usage/report", params={"group_by": "skill,model,version"})).json()
                assert [(r["group"]["skill"], r["requests"]) for r in report["rows"]] == [("caption", 2)]
                assert report["rows"][0]["latency_p50_ms"] > 0
