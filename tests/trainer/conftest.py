"""Fixtures of the trainer tests: the real registry, inference (serving the default model),
trainer and gateway on the suite's NATS and Redis, and helpers to register a model and wait
for a job.

Jobs here are deliberately tiny (a few steps, one or two held-out images) so the whole set
stays within a few minutes on two cores; the figures that matter come from bench/training_*.py.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dreamforge.grpcio import channel
from dreamforge.infra import ManagedService, free_port
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import common_pb2, registry_pb2, registry_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from services.gateway.main import build as build_gateway
from services.gateway.settings import GatewaySettings
from services.inference.main import build as build_inference
from services.inference.settings import InferenceSettings
from services.registry.main import build as build_registry
from services.trainer.main import Trainer
from services.trainer.main import build as build_trainer
from services.trainer.settings import DEFAULT_MODEL_DIR, TrainerSettings
from tests.gateway.conftest import running_on
from tests.helpers import eventually, platform_settings, running_service

needs_model = pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "config.json").exists(),
                                 reason="default checkpoint missing (models/default)")

#: Colour named, answer short: the reward the acceptance scenario uses.
COLOUR_AND_SHORT = {"terms": [
    {"metric": "colour_mention", "weight": 1.0},
    {"metric": "exact_match", "weight": 1.0},
    {"metric": "output_length", "weight": 0.5, "direction": "minimize", "params": {"max_words": 6}},
]}
TINY = {"steps": 2, "prompts_per_step": 2, "num_generations": 4, "train_images": 2, "heldout_images": 2}


def caller(tenant: str) -> common_pb2.Caller:
    return common_pb2.Caller(tenant_id=tenant, key_id="k_test", scopes=["app", "ml"])


@dataclass
class Stack:
    registry_target: str
    trainer_target: str
    trainer_runtime: ServiceRuntime
    nats_url: str
    base_url: str
    admin_key: str

    @property
    def trainer(self) -> Trainer:
        state: Trainer = self.trainer_runtime.state
        return state

    def client(self, key: str | None = None, timeout: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                 headers={"Authorization": f"Bearer {key or self.admin_key}"})

    async def tenant_key(self, scopes: tuple[str, ...] = ("app", "ml")) -> tuple[str, str]:
        """(tenant id, API key) of a fresh tenant, made through the admin API."""
        async with self.client() as c:
            reply = await c.post("/v1/admin/tenants", json={"name": f"tenant-{secrets.token_hex(4)}"})
            assert reply.status_code == 201, reply.text
            tenant = reply.json()["id"]
            reply = await c.post("/v1/admin/keys", json={"tenant_id": tenant, "scopes": list(scopes)})
            assert reply.status_code == 201, reply.text
            return tenant, reply.json()["key"]


def trainer_settings(home: Path, nats_url: str, registry_target: str, **overrides: Any) -> TrainerSettings:
    return TrainerSettings(home=home, nats_url=nats_url, log_format="text", registry_addr=registry_target,
                           feedback_addr="127.0.0.1:1", eval_images=1, job_threads=1, **overrides)


@pytest.fixture(scope="session")
async def stack(shared_nats_url: str, redis_server: ManagedService,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    home = tmp_path_factory.mktemp("trainer-platform")
    async with running_service("registry", build_registry, platform_settings(home / "registry", shared_nats_url)) \
            as registry:
        target = f"127.0.0.1:{registry.port}"
        async with running_service("trainer", build_trainer, trainer_settings(
                home / "trainer", shared_nats_url, target, policy_poll_s=0.5)) as trainer, \
                running_service("inference", build_inference, InferenceSettings(
                    home=home / "inference", nats_url=shared_nats_url, log_format="text", registry_addr=target,
                    default_model=DEFAULT_MODEL_DIR, torch_threads=1)) as inference:
            settings = GatewaySettings(
                home=home / "gateway", nats_url=shared_nats_url, redis_url=redis_server.url, log_format="text",
                gateway_http_port=0, gateway_grpc_port=free_port(), registry_addr=target,
                inference_addr=f"127.0.0.1:{inference.port}", trainer_addr=f"127.0.0.1:{trainer.port}",
                rate_limit_per_minute=100_000, rate_limit_burst=10_000)
            async with running_on("gateway", build_gateway, settings, settings.gateway_grpc_port) as gateway:
                admin_key = (settings.home / "admin-key").read_text().strip()
                yield Stack(target, f"127.0.0.1:{trainer.port}", trainer, shared_nats_url,
                            f"http://127.0.0.1:{gateway.state.http.port}", admin_key)


@pytest.fixture
async def trainer_stub(stack: Stack) -> AsyncIterator[trainer_pb2_grpc.TrainerServiceStub]:
    async with channel(stack.trainer_target) as ch:
        yield trainer_pb2_grpc.TrainerServiceStub(ch)  # type: ignore[no-untyped-call]


@pytest.fixture
async def registry_stub(stack: Stack) -> AsyncIterator[registry_pb2_grpc.RegistryServiceStub]:
    async with channel(stack.registry_target) as ch:
        yield registry_pb2_grpc.RegistryServiceStub(ch)  # type: ignore[no-untyped-call]


async def make_model(registry: registry_pb2_grpc.RegistryServiceStub, tenant: str, name: str) -> registry_pb2.Model:
    return await registry.CreateModel(registry_pb2.CreateModelRequest(caller=caller(tenant), name=name))


async def wait_final(stub: trainer_pb2_grpc.TrainerServiceStub, tenant: str, job_id: str,
                     timeout_s: float = 150.0) -> trainer_pb2.TrainingJob:
    async def done() -> trainer_pb2.TrainingJob | None:
        job = await stub.GetJob(trainer_pb2.GetJobRequest(caller=caller(tenant), job_id=job_id))
        return job if job.status in ("succeeded", "failed", "cancelled") else None

    job: trainer_pb2.TrainingJob = await eventually(done, timeout_s=timeout_s, interval_s=0.5)
    return job


def config(**overrides: Any) -> str:
    return json.dumps({**TINY, **overrides})
