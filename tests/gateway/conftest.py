"""The gateway's test platform: the real registry and inference services plus the real gateway
(its runtime, uvicorn, gRPC front), on the suite's NATS, Redis and a SQLite key store.

Inference serves a real checkpoint: the trained default model when one is built
(`DREAMFORGE_DEFAULT_MODEL`, `DREAMFORGE_TEST_TRAINED_MODEL` or `models/default`), so answers
can be checked for correctness; otherwise a tiny random-weight model made here once per
session (well-formed nonsense: every code path is real, correctness checks are skipped).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dreamforge.grpcio import channel
from dreamforge.infra import ManagedService, free_port
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import inference_pb2_grpc
from services.gateway.app import create_app
from services.gateway.http_server import HttpServer
from services.gateway.main import Gateway
from services.gateway.main import build as build_gateway
from services.gateway.settings import GatewaySettings
from services.inference.main import build as build_inference
from services.inference.settings import InferenceSettings
from services.registry.main import build as build_registry
from tests.helpers import eventually, platform_settings, running_service

ROOT = Path(__file__).resolve().parents[2]


def trained_model() -> Path | None:
    """The trained default checkpoint, when one is built."""
    for candidate in (os.environ.get("DREAMFORGE_DEFAULT_MODEL"), os.environ.get("DREAMFORGE_TEST_TRAINED_MODEL"),
                      str(ROOT / "models" / "default")):
        if candidate and (Path(candidate) / "config.json").is_file():
            return Path(candidate)
    return None


@dataclass(frozen=True)
class ServingModel:
    path: Path | None      # None: torch is not installed, skills answer UNIMPLEMENTED
    trained: bool


@pytest.fixture(scope="session")
def serving_model(tmp_path_factory: pytest.TempPathFactory) -> ServingModel:
    if (path := trained_model()) is not None:
        return ServingModel(path, trained=True)
    try:
        import torch

        from dreamforge.model.arch import TINY_SPEC, build_config, build_model, build_processor
        from dreamforge.model.tokenizer import build_tokenizer
    except ImportError:
        return ServingModel(None, trained=False)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    out = tmp_path_factory.mktemp("gateway-tiny-model")
    tokenizer = build_tokenizer(n_samples=20)
    build_model(build_config(TINY_SPEC, tokenizer), seed=0).save_pretrained(out)
    build_processor(TINY_SPEC, tokenizer).save_pretrained(out)
    return ServingModel(out, trained=False)


@contextlib.asynccontextmanager
async def running_on(name: str, build: Callable[[ServiceRuntime], Awaitable[Any]], settings: Any,
                     port: int) -> AsyncIterator[ServiceRuntime]:
    """Like tests.helpers.running_service, on a chosen gRPC port (the gateway's health
    report looks for itself at settings.gateway_grpc_port)."""
    runtime = ServiceRuntime(name, settings, port=port)
    runtime.state = await build(runtime)
    task = asyncio.create_task(runtime.run(handle_signals=False))
    try:
        await eventually(lambda: runtime.ready or task.done(), timeout_s=20)
        if task.done():
            task.result()
        yield runtime
    finally:
        runtime.request_stop()
        await task


@dataclass
class Account:
    tenant_id: str
    key_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@dataclass
class Stack:
    base_url: str
    grpc_target: str
    admin: Account
    gateway: Gateway
    home: Path
    nats_url: str
    model: ServingModel

    def client(self, account: Account | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers=account.headers if account else None, timeout=10)

    async def account(self, scopes: tuple[str, ...] = ("app", "ml"), *, rate_limit_per_minute: int | None = None,
                      tenant_id: str | None = None) -> Account:
        """A fresh tenant (unless given) with one key, made through the admin API."""
        async with self.client(self.admin) as c:
            if tenant_id is None:
                reply = await c.post("/v1/admin/tenants", json={"name": f"tenant-{secrets.token_hex(4)}"})
                assert reply.status_code == 201, reply.text
                tenant_id = reply.json()["id"]
            body: dict[str, Any] = {"tenant_id": tenant_id, "scopes": list(scopes)}
            if rate_limit_per_minute is not None:
                body["rate_limit_per_minute"] = rate_limit_per_minute
            reply = await c.post("/v1/admin/keys", json=body)
            assert reply.status_code == 201, reply.text
            return Account(tenant_id, reply.json()["id"], reply.json()["key"])


@pytest.fixture(scope="session")
async def stack(shared_nats_url: str, redis_server: ManagedService, serving_model: ServingModel,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    home = tmp_path_factory.mktemp("gateway-stack")
    model_dir = {"default_model": serving_model.path} if serving_model.path else {}
    async with running_service("registry", build_registry, platform_settings(home / "registry", shared_nats_url)) \
            as registry, \
            running_service("inference", build_inference, InferenceSettings(
                home=home / "inference", nats_url=shared_nats_url, log_format="text",
                registry_addr=f"127.0.0.1:{registry.port}", **model_dir)) as inference:
        settings = GatewaySettings(
            home=home / "gateway", nats_url=shared_nats_url, redis_url=redis_server.url, log_format="text",
            gateway_http_port=0, gateway_grpc_port=free_port(),
            registry_addr=f"127.0.0.1:{registry.port}", inference_addr=f"127.0.0.1:{inference.port}",
            # the admin key makes every test's account, faster than 60 in a burst; tests of the rate limit set
            # their key's own
            rate_limit_per_minute=60_000, rate_limit_burst=1_000)
        async with running_on("gateway", build_gateway, settings, settings.gateway_grpc_port) as runtime:
            gateway: Gateway = runtime.state
            admin_key = (settings.home / "admin-key").read_text().strip()
            principal = await gateway.deps.keys.authenticate(admin_key)
            yield Stack(
                base_url=f"http://127.0.0.1:{gateway.http.port}", grpc_target=f"127.0.0.1:{runtime.port}",
                admin=Account(principal.tenant_id, principal.key_id, admin_key), gateway=gateway, home=home,
                nats_url=shared_nats_url, model=serving_model)


@contextlib.asynccontextmanager
async def gateway_calling(stack: Stack, inference_at: str, headers: dict[str, str],
                          **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second gateway on `stack`'s services, except that it calls the inference service at
    `inference_at`, with `settings` changed."""
    async with channel(inference_at) as inference:
        deps = dataclasses.replace(stack.gateway.deps, settings=stack.gateway.deps.settings.model_copy(update=settings),
                                   inference=inference_pb2_grpc.InferenceServiceStub(inference))
        http = HttpServer(create_app(deps), "127.0.0.1", 0)
        await http.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}", headers=headers) as client:
                yield client
        finally:
            await http.stop()
