"""The REST routes' view of the registry: JSON schemas in, gRPC calls with the caller, JSON out.

Every call carries the caller's `Caller` (tenant from the API key) and a deadline;
gRPC errors propagate and `errors.py` turns them into HTTP statuses.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from dreamforge.grpcio import InvalidArgument
from dreamforge.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from services.gateway.auth import to_caller
from services.gateway.keys import Principal
from services.gateway.schemas import models as s
from services.gateway.skills import DEFAULT_MODEL


def _time(ts: Timestamp) -> datetime | None:
    return ts.ToDatetime(tzinfo=UTC) if ts.seconds or ts.nanos else None


def _json_object(text: str) -> dict[str, Any]:
    if not text:
        return {}
    value = json.loads(text)
    return value if isinstance(value, dict) else {"value": value}


def model_out(m: registry_pb2.Model) -> s.ModelOut:
    return s.ModelOut(
        id=m.id, tenant_id=m.tenant_id, name=m.name, base_checkpoint=m.base_checkpoint,
        parameter_count=m.parameter_count, memory_bytes=m.memory_bytes, tags=list(m.tags),
        description=m.description, created_at=_time(m.created_at), created_by=m.created_by,
        latest_version=m.latest_version)


def version_out(v: registry_pb2.ModelVersion) -> s.VersionOut:
    return s.VersionOut(
        model_id=v.model_id, version=v.version, parent_version=v.parent_version,
        artifact_sha256=v.artifact_sha256, artifact_bytes=v.artifact_bytes,
        training_config=_json_object(v.training_config_json), reward_function=_json_object(v.reward_function_json),
        eval_metrics=dict(v.eval_metrics), notes=v.notes, created_at=_time(v.created_at), created_by=v.created_by)


def alias_out(a: registry_pb2.Alias) -> s.AliasOut:
    return s.AliasOut(model_id=a.model_id, name=a.name, version=a.version, is_preview=a.is_preview,
                      updated_at=_time(a.updated_at), updated_by=a.updated_by)


def _page(page_size: int, page_token: str) -> common_pb2.PageRequest:
    return common_pb2.PageRequest(page_size=page_size, page_token=page_token)


class RegistryClient:
    """Calls `RegistryService` on behalf of an authenticated principal."""

    def __init__(self, stub: registry_pb2_grpc.RegistryServiceStub, timeout_s: float = 30.0) -> None:
        self.stub = stub
        self.timeout_s = timeout_s

    async def create_model(self, who: Principal, data: s.CreateModel, idempotency_key: str) -> s.ModelOut:
        reply = await self.stub.CreateModel(registry_pb2.CreateModelRequest(
            caller=to_caller(who), name=data.name, base_checkpoint=data.base_checkpoint,
            parameter_count=data.parameter_count, memory_bytes=data.memory_bytes, tags=data.tags,
            description=data.description, idempotency_key=idempotency_key), timeout=self.timeout_s)
        return model_out(reply)

    async def list_models(self, who: Principal, page_size: int, page_token: str, tag: str) -> s.ModelList:
        reply = await self.stub.ListModels(registry_pb2.ListModelsRequest(
            caller=to_caller(who), page=_page(page_size, page_token), tag=tag), timeout=self.timeout_s)
        models = [model_out(m) for m in reply.models]
        listed = [s.OpenAIModel(DEFAULT_MODEL, 0, "dreamforge")] if not page_token else []
        listed += [s.OpenAIModel(m.name, int(m.created_at.timestamp()) if m.created_at else 0, m.tenant_id)
                   for m in models]
        return s.ModelList(models, reply.page.next_page_token, data=listed)

    async def get_model(self, who: Principal, model: str) -> s.ModelOut:
        reply = await self.stub.GetModel(registry_pb2.GetModelRequest(caller=to_caller(who), model=model),
                                         timeout=self.timeout_s)
        return model_out(reply)

    async def delete_model(self, who: Principal, model: str) -> None:
        await self.stub.DeleteModel(registry_pb2.GetModelRequest(caller=to_caller(who), model=model),
                                    timeout=self.timeout_s)

    async def create_version(self, who: Principal, model: str, data: s.CreateVersion,
                             idempotency_key: str) -> s.VersionOut:
        artifact = b""
        if data.artifact_base64:
            try:
                artifact = base64.b64decode(data.artifact_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidArgument(f"body field `artifact_base64` is not valid base64: {exc}") from None
        reply = await self.stub.CreateVersion(registry_pb2.CreateVersionRequest(
            caller=to_caller(who), model=model, parent_version=data.parent_version or 0, artifact=artifact,
            training_config_json=json.dumps(data.training_config) if data.training_config else "",
            reward_function_json=json.dumps(data.reward_function) if data.reward_function else "",
            eval_metrics=data.eval_metrics, notes=data.notes, idempotency_key=idempotency_key),
            timeout=self.timeout_s)
        return version_out(reply)

    async def list_versions(self, who: Principal, model: str, page_size: int, page_token: str) -> s.VersionList:
        reply = await self.stub.ListVersions(registry_pb2.ListVersionsRequest(
            caller=to_caller(who), model=model, page=_page(page_size, page_token)), timeout=self.timeout_s)
        return s.VersionList([version_out(v) for v in reply.versions], reply.page.next_page_token)

    async def get_version(self, who: Principal, model: str, version: int) -> s.VersionOut:
        reply = await self.stub.GetVersion(registry_pb2.GetVersionRequest(
            caller=to_caller(who), model=model, version=version), timeout=self.timeout_s)
        return version_out(reply)

    async def open_artifact(self, who: Principal, model: str, version: int) -> tuple[str, AsyncIterator[bytes]]:
        """(sha256, chunks). The first chunk is read here, so a missing version fails before
        the response starts (a 404, not a broken stream)."""
        call = self.stub.GetArtifact(registry_pb2.GetVersionRequest(
            caller=to_caller(who), model=model, version=version), timeout=self.timeout_s)
        stream = call.__aiter__()
        try:
            first: registry_pb2.ArtifactChunk | None = await anext(stream)
        except StopAsyncIteration:
            first = None

        async def chunks() -> AsyncIterator[bytes]:
            try:
                if first is None:
                    return
                yield first.data
                async for chunk in stream:
                    yield chunk.data
            finally:
                call.cancel()  # the client went away mid-download: stop the registry's stream too

        return (first.sha256 if first is not None else ""), chunks()

    async def promote(self, who: Principal, model: str, data: s.Promote) -> s.AliasOut:
        reply = await self.stub.Promote(registry_pb2.PromoteRequest(
            caller=to_caller(who), model=model, version=data.version, alias=data.alias), timeout=self.timeout_s)
        return alias_out(reply)

    async def rollback(self, who: Principal, model: str, data: s.Rollback) -> s.AliasOut:
        reply = await self.stub.Rollback(registry_pb2.RollbackRequest(
            caller=to_caller(who), model=model, alias=data.alias, to_version=data.to_version or 0),
            timeout=self.timeout_s)
        return alias_out(reply)

    async def list_aliases(self, who: Principal, model: str) -> s.AliasList:
        reply = await self.stub.ListAliases(registry_pb2.GetModelRequest(caller=to_caller(who), model=model),
                                            timeout=self.timeout_s)
        return s.AliasList([alias_out(a) for a in reply.aliases])

    async def alias_history(self, who: Principal, model: str, alias: str, page_size: int,
                            page_token: str) -> s.AliasHistory:
        reply = await self.stub.AliasHistory(registry_pb2.AliasHistoryRequest(
            caller=to_caller(who), model=model, alias=alias, page=_page(page_size, page_token)),
            timeout=self.timeout_s)
        changes = [s.AliasChangeOut(alias=c.alias, version=c.version, previous_version=c.previous_version,
                                    action=c.action, at=_time(c.at), actor=c.actor) for c in reply.changes]
        return s.AliasHistory(changes, reply.page.next_page_token)

    async def create_preview(self, who: Principal, model: str, data: s.CreatePreview) -> s.AliasOut:
        reply = await self.stub.CreatePreview(registry_pb2.CreatePreviewRequest(
            caller=to_caller(who), model=model, version=data.version, name=data.name), timeout=self.timeout_s)
        return alias_out(reply)

    async def delete_preview(self, who: Principal, model: str, name: str) -> None:
        await self.stub.DeletePreview(registry_pb2.DeletePreviewRequest(
            caller=to_caller(who), model=model, name=name), timeout=self.timeout_s)

    async def diff(self, who: Principal, model: str, from_version: int, to_version: int) -> s.VersionDiff:
        reply = await self.stub.DiffVersions(registry_pb2.DiffVersionsRequest(
            caller=to_caller(who), model=model, from_version=from_version, to_version=to_version),
            timeout=self.timeout_s)
        return s.VersionDiff(
            from_version=version_out(getattr(reply, "from")), to_version=version_out(reply.to),
            changes=[s.FieldChangeOut(c.field, c.before, c.after) for c in reply.changes])

    async def resolve(self, who: Principal, reference: str) -> s.Resolved:
        reply = await self.stub.Resolve(registry_pb2.ResolveRequest(caller=to_caller(who), reference=reference),
                                        timeout=self.timeout_s)
        return s.Resolved(model=model_out(reply.model), version=version_out(reply.version), alias=reply.alias,
                          is_preview=reply.is_preview)
