"""The registry as its callers see it: the real ServiceRuntime wired by `main.build`, a
grpc.aio server on a free port, and a real client stub — status codes and messages,
the artifact stream, large uploads, health and reflection. Plus `python -m
services.registry` itself: it becomes ready and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dreamforge.grpcio import channel
from dreamforge.infra import free_port
from dreamforge.runtime import ServiceRuntime
from dreamforge.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from services.registry.main import SERVICE_NAME, build
from services.registry.settings import MIB, RegistrySettings
from tests.helpers import eventually

A = common_pb2.Caller(tenant_id="tenant-a", key_id="key-a")
B = common_pb2.Caller(tenant_id="tenant-b", key_id="key-b")
MAX_ARTIFACT = 6 * MIB
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
async def target(shared_nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    settings = RegistrySettings(home=tmp_path_factory.mktemp("registry-home"), nats_url=shared_nats_url,
                                registry_port=free_port(), max_artifact_bytes=MAX_ARTIFACT,
                                artifact_chunk_bytes=CHUNK, shutdown_grace_s=1.0)
    runtime = ServiceRuntime("registry", settings)
    await build(runtime)
    task = asyncio.create_task(runtime.run())
    await eventually(lambda: runtime.ready or task.done())
    assert runtime.ready, task
    yield f"127.0.0.1:{runtime.port}"
    runtime.request_stop()
    await task
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # ServiceRuntime.run installed these
        loop.remove_signal_handler(sig)


@pytest.fixture
async def stub(target: str) -> AsyncIterator[registry_pb2_grpc.RegistryServiceStub]:
    async with channel(target) as ch:
        yield registry_pb2_grpc.RegistryServiceStub(ch)


async def error(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    return info.value


async def test_health_and_reflection_answer(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", SERVICE_NAME):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        call = reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        names = {s.name for s in (await call.read()).list_services_response.service}
        await call.write(reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME))
        described = await call.read()
        await call.done_writing()
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names
    assert described.file_descriptor_response.file_descriptor_proto


async def test_model_lifecycle_over_grpc(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    model = await stub.CreateModel(registry_pb2.CreateModelRequest(
        caller=A, name="lifecycle", base_checkpoint="/w/base", parameter_count=42, tags=["vision"],
        idempotency_key="create-lifecycle"))
    assert model.id.startswith("mdl_") and model.created_by == "key-a" and model.created_at.seconds > 0
    again = await stub.CreateModel(registry_pb2.CreateModelRequest(
        caller=A, name="lifecycle", base_checkpoint="/w/base", parameter_count=42, tags=["vision"],
        idempotency_key="create-lifecycle"))
    assert again.id == model.id
    v1 = await stub.CreateVersion(registry_pb2.CreateVersionRequest(
        caller=A, model="lifecycle", training_config_json=json.dumps({"lr": 1e-4}), eval_metrics={"iou": 0.5}))
    v2 = await stub.CreateVersion(registry_pb2.CreateVersionRequest(
        caller=A, model=model.id, parent_version=1, eval_metrics={"iou": 0.75}, notes="better"))
    assert (v1.version, v2.version, v2.parent_version, dict(v2.eval_metrics)) == (1, 2, 1, {"iou": 0.75})
    promoted = await stub.Promote(registry_pb2.PromoteRequest(caller=A, model="lifecycle", version=1))
    assert (promoted.name, promoted.version, promoted.updated_by) == ("production", 1, "key-a")
    await stub.Promote(registry_pb2.PromoteRequest(caller=A, model="lifecycle", version=2))
    preview = await stub.CreatePreview(registry_pb2.CreatePreviewRequest(
        caller=A, model="lifecycle", version=1, name="try-v1"))
    assert preview.is_preview
    resolved = await stub.Resolve(registry_pb2.ResolveRequest(caller=A, reference="lifecycle"))
    assert (resolved.model.id, resolved.version.version, resolved.alias) == (model.id, 2, "production")
    rolled = await stub.Rollback(registry_pb2.RollbackRequest(caller=A, model="lifecycle"))
    assert rolled.version == 1
    aliases = await stub.ListAliases(registry_pb2.GetModelRequest(caller=A, model="lifecycle"))
    assert [(a.name, a.version, a.is_preview) for a in aliases.aliases] == [
        ("production", 1, False), ("try-v1", 1, True)]
    history = await stub.AliasHistory(registry_pb2.AliasHistoryRequest(
        caller=A, model="lifecycle", alias="production", page=common_pb2.PageRequest(page_size=2)))
    assert [(c.action, c.version, c.previous_version) for c in history.changes] == [
        ("rollback", 1, 2), ("promote", 2, 1)]
    assert history.page.next_page_token
    diff = await stub.DiffVersions(registry_pb2.DiffVersionsRequest(
        caller=A, model="lifecycle", from_version=1, to_version=2))
    assert getattr(diff, "from").version == 1 and diff.to.version == 2
    assert {c.field: (c.before, c.after) for c in diff.changes}["eval_metrics.iou"] == ("0.5", "0.75")
    listed = await stub.ListVersions(registry_pb2.ListVersionsRequest(caller=A, model="lifecycle"))
    assert [v.version for v in listed.versions] == [1, 2] and not listed.page.next_page_token
    await stub.DeletePreview(registry_pb2.DeletePreviewRequest(caller=A, model="lifecycle", name="try-v1"))
    await stub.DeleteModel(registry_pb2.GetModelRequest(caller=A, model="lifecycle"))
    gone = await error(stub.GetModel(registry_pb2.GetModelRequest(caller=A, model=model.id)))
    assert gone.code() == grpc.StatusCode.NOT_FOUND


async def test_artifact_upload_and_stream(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    await stub.CreateModel(registry_pb2.CreateModelRequest(caller=A, name="weights"))
    data = os.urandom(5 * MIB + 123)  # over grpc's default 4 MiB message limit
    version = await stub.CreateVersion(registry_pb2.CreateVersionRequest(caller=A, model="weights", artifact=data))
    assert version.artifact_sha256 == hashlib.sha256(data).hexdigest()
    assert version.artifact_bytes == len(data)
    chunks = [c async for c in stub.GetArtifact(registry_pb2.GetVersionRequest(caller=A, model="weights",
                                                                                 version=1))]
    assert b"".join(c.data for c in chunks) == data
    assert chunks[0].sha256 == version.artifact_sha256 and all(c.sha256 == "" for c in chunks[1:])
    assert len(chunks) == -(-len(data) // CHUNK)

    await stub.CreateVersion(registry_pb2.CreateVersionRequest(caller=A, model="weights"))
    empty = await error(_drain(stub.GetArtifact(registry_pb2.GetVersionRequest(caller=A, model="weights",
                                                                                version=2))))
    assert empty.code() == grpc.StatusCode.NOT_FOUND and "has no artifact" in (empty.details() or "")
    other = await error(_drain(stub.GetArtifact(registry_pb2.GetVersionRequest(caller=B, model="weights",
                                                                                version=1))))
    assert other.code() == grpc.StatusCode.NOT_FOUND
    too_big = await error(stub.CreateVersion(registry_pb2.CreateVersionRequest(
        caller=A, model="weights", artifact=b"x" * (MAX_ARTIFACT + 1))))
    assert too_big.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"the limit is {MAX_ARTIFACT}" in (too_big.details() or "")


async def _drain(call: grpc.aio.UnaryStreamCall) -> None:
    async for _ in call:
        pass


async def test_error_codes_carry_messages_that_say_what_to_fix(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    await stub.CreateModel(registry_pb2.CreateModelRequest(caller=A, name="errors"))
    cases = [
        (stub.CreateModel(registry_pb2.CreateModelRequest(caller=A, name="Bad Name")),
         grpc.StatusCode.INVALID_ARGUMENT, "^[a-z0-9][a-z0-9._-]{0,62}$"),
        (stub.CreateModel(registry_pb2.CreateModelRequest(name="x")),
         grpc.StatusCode.INVALID_ARGUMENT, "caller.tenant_id is required"),
        (stub.CreateModel(registry_pb2.CreateModelRequest(caller=A, name="errors")),
         grpc.StatusCode.ALREADY_EXISTS, "already exists"),
        (stub.GetModel(registry_pb2.GetModelRequest(caller=B, model="errors")),
         grpc.StatusCode.NOT_FOUND, "not found"),
        (stub.CreateVersion(registry_pb2.CreateVersionRequest(caller=A, model="errors",
                                                              training_config_json="[1]")),
         grpc.StatusCode.INVALID_ARGUMENT, "training_config_json must be a JSON object"),
        (stub.Resolve(registry_pb2.ResolveRequest(caller=A, reference="errors")),
         grpc.StatusCode.FAILED_PRECONDITION, "no production version yet"),
        (stub.Rollback(registry_pb2.RollbackRequest(caller=A, model="errors")),
         grpc.StatusCode.FAILED_PRECONDITION, "promote a version first"),
        (stub.Promote(registry_pb2.PromoteRequest(caller=A, model="errors", version=3)),
         grpc.StatusCode.NOT_FOUND, "has no version 3"),
        (stub.ListModels(registry_pb2.ListModelsRequest(caller=A, page=common_pb2.PageRequest(page_size=500))),
         grpc.StatusCode.INVALID_ARGUMENT, "page_size must be between 1 and 200"),
        (stub.ListModels(registry_pb2.ListModelsRequest(caller=A, page=common_pb2.PageRequest(page_token="zz"))),
         grpc.StatusCode.INVALID_ARGUMENT, "page_token"),
        (stub.Resolve(registry_pb2.ResolveRequest(caller=A, reference="a@b@c")),
         grpc.StatusCode.INVALID_ARGUMENT, "malformed"),
    ]
    for call, code, message in cases:
        err = await error(call)
        assert (err.code(), message in (err.details() or "")) == (code, True), (err.details(), message)


async def test_tenant_isolation_over_grpc(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    model = await stub.CreateModel(registry_pb2.CreateModelRequest(caller=A, name="isolated"))
    for ref in (model.id, "isolated"):
        err = await error(stub.GetModel(registry_pb2.GetModelRequest(caller=B, model=ref)))
        assert err.code() == grpc.StatusCode.NOT_FOUND
    assert list((await stub.ListModels(registry_pb2.ListModelsRequest(caller=B))).models) == []


async def test_python_dash_m_starts_ready_and_stops_on_sigterm(shared_nats_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DREAMFORGE_HOME": str(tmp_path), "DREAMFORGE_NATS_URL": shared_nats_url,
           "DREAMFORGE_REGISTRY_PORT": str(free_port()), "DREAMFORGE_LOG_FORMAT": "json"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.registry", env=env, cwd=Path(__file__).parents[2],
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    lines: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(20):
            while not any(entry.get("msg") == "ready" for entry in lines):
                line = await proc.stdout.readline()
                assert line, f"exited before ready: {lines}"
                lines.append(json.loads(line))
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            rest = await proc.stdout.read()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines += [json.loads(x) for x in rest.decode().splitlines() if x.strip()]
    assert code == 0
    assert [e["msg"] for e in lines if e["msg"] in ("ready", "stopped")] == ["ready", "stopped"]
    assert not [e for e in lines if e.get("level") in ("error", "critical")]
    assert (tmp_path / "data" / "registry.db").exists()
