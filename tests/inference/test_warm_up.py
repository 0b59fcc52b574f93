"""The inference service loads the default model and generates once before it says ready, so a
user's first request does not pay for loading (seconds with Triton); a model that cannot load
does not keep the service from starting, and requests then say what is wrong."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import grpc
import pytest

from dreamforge.grpcio import channel
from dreamforge.v1 import common_pb2, inference_pb2, inference_pb2_grpc
from services.inference.main import build as build_inference
from services.inference.settings import InferenceSettings
from services.registry.main import build as build_registry
from tests.helpers import platform_settings, running_service
from tests.inference.conftest import image_of


def _warm_records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dreamforge.inference" and r.getMessage() == message]


@pytest.mark.parametrize("runtime_name", ["torch", "triton"])
async def test_the_default_model_is_loaded_and_has_generated_before_ready(
        runtime_name: str, shared_nats_url: str, tiny_model_dir: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    settings = InferenceSettings(home=tmp_path, nats_url=shared_nats_url, log_format="text",
                                 default_model=tiny_model_dir, inference_runtime=runtime_name)
    with caplog.at_level(logging.INFO, logger="dreamforge.inference"):
        async with running_service("inference", build_inference, settings) as inference:
            [runtime] = inference.state.service.pool.loaded()  # before any request
            assert runtime.name == runtime_name
            [warm] = _warm_records(caplog, "default model warm")
            assert warm.runtime == runtime_name and warm.took_ms > 0  # type: ignore[attr-defined]
            if runtime_name == "triton":
                requests, executions = await runtime.statistics()  # type: ignore[attr-defined]
                assert requests >= 1 and executions >= 1


async def test_without_warm_up_nothing_loads_before_the_first_request(
        shared_nats_url: str, tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = InferenceSettings(home=tmp_path, nats_url=shared_nats_url, log_format="text",
                                 default_model=tiny_model_dir, warm_up=False)
    with caplog.at_level(logging.INFO, logger="dreamforge.inference"):
        async with running_service("inference", build_inference, settings) as inference:
            assert inference.state.service.pool.loaded() == []
    assert _warm_records(caplog, "default model warm") == []


async def test_a_default_model_that_cannot_load_still_starts_and_requests_say_why(
        shared_nats_url: str, tiny_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    registry_settings = platform_settings(tmp_path / "registry", shared_nats_url)
    with caplog.at_level(logging.INFO, logger="dreamforge.inference"):
        async with running_service("registry", build_registry, registry_settings) as registry, \
                running_service("inference", build_inference, InferenceSettings(
                    home=tmp_path, nats_url=shared_nats_url, log_format="text", default_model=broken,
                    registry_addr=f"127.0.0.1:{registry.port}")) as inference:
            [failed] = _warm_records(caplog, "default model warm-up failed")
            assert "safetensors" in failed.error.lower() or "header" in failed.error.lower()  # type: ignore[attr-defined]
            async with channel(f"127.0.0.1:{inference.port}") as ch:
                stub = inference_pb2_grpc.InferenceServiceStub(ch)  # type: ignore[no-untyped-call]
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.Query(inference_pb2.QueryRequest(
                        caller=common_pb2.Caller(tenant_id="t_broken", key_id="k", scopes=["app"]),
                        image=image_of(0), question="what colour is the circle?"))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert f"the base model at {broken} cannot be loaded: SafetensorError" in (err.value.details() or "")
