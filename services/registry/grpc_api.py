"""`dreamforge.v1.RegistryService` over gRPC: converts protobuf <-> domain records and calls
`RegistryStore`. No logic lives here; `grpc_errors` turns the store's ServiceErrors into
status codes with their messages intact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from dreamforge.grpcio import grpc_errors
from dreamforge.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from services.registry import records
from services.registry.artifacts import DEFAULT_CHUNK
from services.registry.store import RegistryStore

Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    def __init__(self, store: RegistryStore, *, chunk_bytes: int = DEFAULT_CHUNK) -> None:
        self.store = store
        self.chunk_bytes = chunk_bytes

    # -- models ---------------------------------------------------------------------------
    @grpc_errors
    async def CreateModel(self, request: registry_pb2.CreateModelRequest, context: Context) -> registry_pb2.Model:
        return model_pb(await self.store.create_model(
            caller(request), request.name, base_checkpoint=request.base_checkpoint,
            parameter_count=request.parameter_count, memory_bytes=request.memory_bytes, tags=list(request.tags),
            description=request.description, idempotency_key=request.idempotency_key))

    @grpc_errors
    async def GetModel(self, request: registry_pb2.GetModelRequest, context: Context) -> registry_pb2.Model:
        return model_pb(await self.store.get_model(caller(request), request.model))

    @grpc_errors
    async def ListModels(self, request: registry_pb2.ListModelsRequest,
                         context: Context) -> registry_pb2.ListModelsResponse:
        page = await self.store.list_models(caller(request), page_size=request.page.page_size,
                                            page_token=request.page.page_token, tag=request.tag)
        return registry_pb2.ListModelsResponse(models=[model_pb(m) for m in page.items], page=page_info(page))

    @grpc_errors
    async def DeleteModel(self, request: registry_pb2.GetModelRequest,
                          context: Context) -> registry_pb2.DeleteModelResponse:
        await self.store.delete_model(caller(request), request.model)
        return registry_pb2.DeleteModelResponse()

    # -- versions -------------------------------------------------------------------------
    @grpc_errors
    async def CreateVersion(self, request: registry_pb2.CreateVersionRequest,
                            context: Context) -> registry_pb2.ModelVersion:
        return version_pb(await self.store.create_version(
            caller(request), request.model, parent_version=request.parent_version, artifact=request.artifact,
            training_config_json=request.training_config_json, reward_function_json=request.reward_function_json,
            eval_metrics=dict(request.eval_metrics), notes=request.notes, idempotency_key=request.idempotency_key))

    @grpc_errors
    async def GetVersion(self, request: registry_pb2.GetVersionRequest,
                         context: Context) -> registry_pb2.ModelVersion:
        return version_pb(await self.store.get_version(caller(request), request.model, request.version))

    @grpc_errors
    async def ListVersions(self, request: registry_pb2.ListVersionsRequest,
                           context: Context) -> registry_pb2.ListVersionsResponse:
        page = await self.store.list_versions(caller(request), request.model, page_size=request.page.page_size,
                                              page_token=request.page.page_token)
        return registry_pb2.ListVersionsResponse(versions=[version_pb(x) for x in page.items], page=page_info(page))

    @grpc_errors  # type: ignore[type-var]  # an async generator: grpc_errors wraps its iteration too
    async def GetArtifact(self, request: registry_pb2.GetVersionRequest,
                          context: Context) -> AsyncIterator[registry_pb2.ArtifactChunk]:
        version, chunks = await self.store.open_artifact(caller(request), request.model, request.version,
                                                         self.chunk_bytes)
        first = True
        async for data in chunks:
            yield registry_pb2.ArtifactChunk(data=data, sha256=version.artifact_sha256 if first else "")
            first = False

    # -- aliases and previews -------------------------------------------------------------
    @grpc_errors
    async def Promote(self, request: registry_pb2.PromoteRequest, context: Context) -> registry_pb2.Alias:
        return alias_pb(await self.store.promote(caller(request), request.model, request.version,
                                                 request.alias or records.PRODUCTION))

    @grpc_errors
    async def Rollback(self, request: registry_pb2.RollbackRequest, context: Context) -> registry_pb2.Alias:
        return alias_pb(await self.store.rollback(caller(request), request.model,
                                                  request.alias or records.PRODUCTION, request.to_version))

    @grpc_errors
    async def ListAliases(self, request: registry_pb2.GetModelRequest,
                          context: Context) -> registry_pb2.ListAliasesResponse:
        aliases = await self.store.list_aliases(caller(request), request.model)
        return registry_pb2.ListAliasesResponse(aliases=[alias_pb(a) for a in aliases])

    @grpc_errors
    async def AliasHistory(self, request: registry_pb2.AliasHistoryRequest,
                           context: Context) -> registry_pb2.AliasHistoryResponse:
        page = await self.store.alias_history(caller(request), request.model, request.alias,
                                              page_size=request.page.page_size, page_token=request.page.page_token)
        return registry_pb2.AliasHistoryResponse(changes=[
            registry_pb2.AliasChange(alias=c.alias, version=c.version, previous_version=c.previous_version,
                                     action=c.action, at=ts(c.at), actor=c.actor) for c in page.items],
            page=page_info(page))

    @grpc_errors
    async def CreatePreview(self, request: registry_pb2.CreatePreviewRequest,
                            context: Context) -> registry_pb2.Alias:
        return alias_pb(await self.store.create_preview(caller(request), request.model, request.version,
                                                        request.name))

    @grpc_errors
    async def DeletePreview(self, request: registry_pb2.DeletePreviewRequest,
                            context: Context) -> registry_pb2.DeletePreviewResponse:
        await self.store.delete_preview(caller(request), request.model, request.name)
        return registry_pb2.DeletePreviewResponse()

    @grpc_errors
    async def Resolve(self, request: registry_pb2.ResolveRequest, context: Context) -> registry_pb2.ResolveResponse:
        found = await self.store.resolve(caller(request), request.reference)
        return registry_pb2.ResolveResponse(model=model_pb(found.model), version=version_pb(found.version),
                                            alias=found.alias, is_preview=found.is_preview)

    @grpc_errors
    async def DiffVersions(self, request: registry_pb2.DiffVersionsRequest,
                           context: Context) -> registry_pb2.DiffVersionsResponse:
        diff = await self.store.diff_versions(caller(request), request.model, request.from_version,
                                              request.to_version)
        return registry_pb2.DiffVersionsResponse(
            **{"from": version_pb(diff.before)}, to=version_pb(diff.after),
            changes=[registry_pb2.FieldChange(field=c.field, before=c.before, after=c.after) for c in diff.changes])


# -- conversions ------------------------------------------------------------------------------
def caller(request: Any) -> records.Caller:
    c: common_pb2.Caller = request.caller
    return records.Caller(tenant_id=c.tenant_id, key_id=c.key_id)


def ts(value: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(value)
    return out


def page_info(page: records.Page[Any]) -> common_pb2.PageInfo:
    return common_pb2.PageInfo(next_page_token=page.next_page_token)


def model_pb(m: records.Model) -> registry_pb2.Model:
    return registry_pb2.Model(
        id=m.id, tenant_id=m.tenant_id, name=m.name, base_checkpoint=m.base_checkpoint,
        parameter_count=m.parameter_count, memory_bytes=m.memory_bytes, tags=list(m.tags),
        description=m.description, created_at=ts(m.created_at), created_by=m.created_by,
        latest_version=m.latest_version)


def version_pb(x: records.Version) -> registry_pb2.ModelVersion:
    return registry_pb2.ModelVersion(
        model_id=x.model_id, version=x.version, parent_version=x.parent_version,
        artifact_sha256=x.artifact_sha256, artifact_bytes=x.artifact_bytes,
        training_config_json=x.training_config_json, reward_function_json=x.reward_function_json,
        eval_metrics=x.eval_metrics, notes=x.notes, created_at=ts(x.created_at), created_by=x.created_by)


def alias_pb(a: records.Alias) -> registry_pb2.Alias:
    return registry_pb2.Alias(model_id=a.model_id, name=a.name, version=a.version, is_preview=a.is_preview,
                              updated_at=ts(a.updated_at), updated_by=a.updated_by)

