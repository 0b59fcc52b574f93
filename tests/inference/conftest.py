"""Fixtures of the inference tests: model checkpoints, LoRA adapters, runtimes, and a running
registry + inference pair.

Two checkpoints: a TINY random model built here once per session (plumbing: every code path,
fast on 2 cores) and the trained default model at `models/default` (answer correctness; those
tests are skipped until it is built). `DREAMFORGE_TEST_TRAINED_MODEL` points the correctness
tests at another trained checkpoint (e.g. /tmp/dreamforge-model/default while developing).

Runtime-level tests take `runtime_name`; a runtime (e.g. "triton") joins the suite by adding
itself to RUNTIMES and to `services.inference.runtime.factory.create_runtime`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from dreamforge.adapters import make_lora_adapter, pack_adapter
from dreamforge.grpcio import channel
from dreamforge.images import encode_png
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import common_pb2, inference_pb2, inference_pb2_grpc, registry_pb2_grpc
from dreamforge.world import get_sample
from services.inference.main import Inference
from services.inference.main import build as build_inference
from services.inference.runtime.base import ModelRuntime
from services.inference.runtime.factory import create_runtime
from services.inference.settings import InferenceSettings
from services.registry.main import build as build_registry
from tests.helpers import platform_settings, running_service

ROOT = Path(__file__).resolve().parents[2]
TRAINED_MODEL = Path(os.environ.get("DREAMFORGE_TEST_TRAINED_MODEL", ROOT / "models" / "default"))
needs_trained_model = pytest.mark.skipif(
    not (TRAINED_MODEL / "config.json").exists(),
    reason="default checkpoint not built: run python -m dreamforge.model build --out models/default")
RUNTIMES = ["torch", "triton"]

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A TINY_SPEC model with random weights: answers are nonsense, every code path is real."""
    from dreamforge.model.arch import TINY_SPEC, build_config, build_model, build_processor
    from dreamforge.model.tokenizer import build_tokenizer

    out = tmp_path_factory.mktemp("tiny-model")
    tokenizer = build_tokenizer(n_samples=20)
    build_model(build_config(TINY_SPEC, tokenizer), seed=0).save_pretrained(out)
    build_processor(TINY_SPEC, tokenizer).save_pretrained(out)
    return out


@dataclass(frozen=True)
class Adapter:
    path: Path
    packed: bytes


@pytest.fixture(scope="session")
def tiny_adapters(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Adapter]:
    """Three real LoRA adapters on the tiny model (different seeds, 4x the init scale: different answers even
    where a random base model's argmax barely moves)."""
    root = tmp_path_factory.mktemp("adapters")
    out = []
    for seed in (1, 2, 3):
        path = make_lora_adapter(tiny_model_dir, root / f"seed{seed}", seed=seed, strength=4.0)
        out.append(Adapter(path, pack_adapter(path)))
    return out


@pytest.fixture(params=RUNTIMES)
def runtime_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


RuntimeFactory = Callable[..., Awaitable[ModelRuntime]]


@pytest.fixture
async def make_runtime(runtime_name: str, tmp_path: Path) -> AsyncIterator[RuntimeFactory]:
    """Build (and close after the test) runtimes of `runtime_name` on a base directory."""
    made: list[ModelRuntime] = []

    async def make(base_dir: Path, **settings: object) -> ModelRuntime:
        config = InferenceSettings(home=tmp_path, inference_runtime=runtime_name, default_model=base_dir,
                                   **settings)  # type: ignore[arg-type]
        runtime = create_runtime(config, base_dir)
        made.append(runtime)
        await runtime.start()
        return runtime

    yield make
    for runtime in made:
        await runtime.close()


@dataclass
class Platform:
    """Registry + inference running for real on the suite's shared NATS."""

    nats_url: str
    registry_target: str
    inference_target: str
    runtime: ServiceRuntime  # the inference service's

    @property
    def inference(self) -> Inference:
        state: Inference = self.runtime.state
        return state

    def caller(self, tenant: str) -> common_pb2.Caller:
        return common_pb2.Caller(tenant_id=tenant, key_id="k_test", scopes=["app", "ml"])


@pytest.fixture(scope="session")
async def stack(shared_nats_url: str, tiny_model_dir: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    home = tmp_path_factory.mktemp("inference-platform")
    async with running_service("registry", build_registry, platform_settings(home / "registry", shared_nats_url)) \
            as registry:
        settings = InferenceSettings(
            home=home / "inference", nats_url=shared_nats_url, log_format="text",
            registry_addr=f"127.0.0.1:{registry.port}", default_model=tiny_model_dir,
            max_image_bytes=200_000, max_image_pixels=1_000_000)
        async with running_service("inference", build_inference, settings) as inference:
            yield Platform(shared_nats_url, f"127.0.0.1:{registry.port}", f"127.0.0.1:{inference.port}", inference)


@pytest.fixture
async def inference_stub(stack: Platform) -> AsyncIterator[inference_pb2_grpc.InferenceServiceStub]:
    async with channel(stack.inference_target) as ch:
        yield inference_pb2_grpc.InferenceServiceStub(ch)  # type: ignore[no-untyped-call]


@pytest.fixture
async def registry_stub(stack: Platform) -> AsyncIterator[registry_pb2_grpc.RegistryServiceStub]:
    async with channel(stack.registry_target) as ch:
        yield registry_pb2_grpc.RegistryServiceStub(ch)  # type: ignore[no-untyped-call]


def image_of(index: int, size: int = 96) -> inference_pb2.Image:
    """A PNG of the world's test image `index`."""
    return inference_pb2.Image(data=encode_png(get_sample("test", index, size).image))
