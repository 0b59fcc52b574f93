"""Fixtures of the trainer tests: a real registry and trainer on the suite's NATS, the default
model as the base, and helpers to register a model and wait for a job.

Jobs here are deliberately tiny (a few steps, one or two held-out images) so the whole set
stays within a few minutes on two cores; the figures that matter come from bench/training_*.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dreamforge.grpcio import channel
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import common_pb2, registry_pb2, registry_pb2_grpc, trainer_pb2, trainer_pb2_grpc
from services.registry.main import build as build_registry
from services.trainer.main import Trainer
from services.trainer.main import build as build_trainer
from services.trainer.settings import DEFAULT_MODEL_DIR, TrainerSettings
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

    @property
    def trainer(self) -> Trainer:
        state: Trainer = self.trainer_runtime.state
        return state


def trainer_settings(home: Path, nats_url: str, registry_target: str, **overrides: Any) -> TrainerSettings:
    return TrainerSettings(home=home, nats_url=nats_url, log_format="text", registry_addr=registry_target,
                           feedback_addr="127.0.0.1:1", eval_images=1, job_threads=1, **overrides)


@pytest.fixture(scope="session")
async def stack(shared_nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    home = tmp_path_factory.mktemp("trainer-platform")
    async with running_service("registry", build_registry, platform_settings(home / "registry", shared_nats_url)) \
            as registry:
        target = f"127.0.0.1:{registry.port}"
        async with running_service("trainer", build_trainer, trainer_settings(
                home / "trainer", shared_nats_url, target, policy_poll_s=0.5)) as trainer:
            yield Stack(target, f"127.0.0.1:{trainer.port}", trainer, shared_nats_url)


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
