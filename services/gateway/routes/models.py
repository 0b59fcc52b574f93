"""Model registry routes: models, versions, artifacts, aliases, previews, diffs, resolution.

Reads need scope `app` or `ml`, writes need `ml`. Everything is scoped to the caller's
tenant by the registry (another tenant's model is a 404).
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.datastructures import ResponseHeader
from litestar.params import Parameter
from litestar.response import Stream

from services.gateway.auth import requires
from services.gateway.keys import Principal
from services.gateway.registry_client import RegistryClient
from services.gateway.routes.admin import SECURITY
from services.gateway.schemas import models as s

READ = [requires("app", "ml")]
WRITE = [requires("ml")]

PageSize = Annotated[int, Parameter(ge=1, le=200, description="Items per page (1-200)")]
PageToken = Annotated[str, Parameter(max_length=500, description="`next_page_token` of the previous page")]
IdempotencyKey = Annotated[str | None, Parameter(
    header="Idempotency-Key", max_length=200, description="Retries with the same key create nothing twice")]
ModelRef = Annotated[str, Parameter(description="Model id or name")]
Version = Annotated[int, Parameter(ge=1, le=s.INT32_MAX, description="Version number (1, 2, ...)")]


class ModelsController(Controller):
    path = "/v1/models"
    tags = ["models"]
    security = SECURITY

    @post("/", operation_id="createModel", summary="Register a model", guards=WRITE)
    async def create_model(self, registry: RegistryClient, principal: Principal, data: s.CreateModel,
                           idempotency_key: IdempotencyKey = None) -> s.ModelOut:
        return await registry.create_model(principal, data, idempotency_key or "")

    @get("/", operation_id="listModels", summary="List the tenant's models", guards=READ)
    async def list_models(self, registry: RegistryClient, principal: Principal, page_size: PageSize = 50,
                          page_token: PageToken = "",
                          tag: Annotated[str, Parameter(description="Only models with this tag")] = "",
                          ) -> s.ModelList:
        return await registry.list_models(principal, page_size, page_token, tag)

    @get("/{model:str}", operation_id="getModel", summary="Get a model by id or name", guards=READ)
    async def get_model(self, registry: RegistryClient, principal: Principal, model: ModelRef) -> s.ModelOut:
        return await registry.get_model(principal, model)

    @delete("/{model:str}", operation_id="deleteModel", summary="Delete a model", guards=WRITE)
    async def delete_model(self, registry: RegistryClient, principal: Principal, model: ModelRef) -> None:
        await registry.delete_model(principal, model)

    @post("/{model:str}/versions", operation_id="createVersion",
          summary="Register a new immutable version (adapter bytes as base64)", guards=WRITE)
    async def create_version(self, registry: RegistryClient, principal: Principal, model: ModelRef,
                             data: s.CreateVersion, idempotency_key: IdempotencyKey = None) -> s.VersionOut:
        return await registry.create_version(principal, model, data, idempotency_key or "")

    @get("/{model:str}/versions", operation_id="listVersions", summary="List a model's versions", guards=READ)
    async def list_versions(self, registry: RegistryClient, principal: Principal, model: ModelRef,
                            page_size: PageSize = 50, page_token: PageToken = "") -> s.VersionList:
        return await registry.list_versions(principal, model, page_size, page_token)

    @get("/{model:str}/versions/{version:int}", operation_id="getVersion", summary="Get one version",
         guards=READ)
    async def get_version(self, registry: RegistryClient, principal: Principal, model: ModelRef,
                          version: Version) -> s.VersionOut:
        return await registry.get_version(principal, model, version)

    @get("/{model:str}/versions/{version:int}/artifact", operation_id="downloadArtifact",
         summary="Download a version's adapter bytes", guards=READ, media_type="application/octet-stream",
         content_media_type="application/octet-stream", response_description="The artifact's bytes",
         response_headers=[
             ResponseHeader(name="X-Artifact-Sha256", value="", documentation_only=True,
                            description="sha256 of the artifact (hex), to verify the download"),
             ResponseHeader(name="Content-Disposition", value="", documentation_only=True,
                            description='attachment; filename="<model>-v<version>.bin"')])
    async def download_artifact(self, registry: RegistryClient, principal: Principal, model: ModelRef,
                                version: Version) -> Stream:
        sha256, chunks = await registry.open_artifact(principal, model, version)
        return Stream(chunks, media_type="application/octet-stream", headers={
            "X-Artifact-Sha256": sha256,
            "Content-Disposition": f'attachment; filename="{model}-v{version}.bin"'})

    @post("/{model:str}/promote", operation_id="promote", status_code=200,
          summary="Point an alias (default production) at a version", guards=WRITE)
    async def promote(self, registry: RegistryClient, principal: Principal, model: ModelRef,
                      data: s.Promote) -> s.AliasOut:
        return await registry.promote(principal, model, data)

    @post("/{model:str}/rollback", operation_id="rollback", status_code=200,
          summary="Move an alias back to its previous (or a named) version", guards=WRITE)
    async def rollback(self, registry: RegistryClient, principal: Principal, model: ModelRef,
                       data: s.Rollback) -> s.AliasOut:
        return await registry.rollback(principal, model, data)

    @get("/{model:str}/aliases", operation_id="listAliases", summary="List a model's aliases and previews",
         guards=READ)
    async def list_aliases(self, registry: RegistryClient, principal: Principal, model: ModelRef) -> s.AliasList:
        return await registry.list_aliases(principal, model)

    @get("/{model:str}/aliases/{alias:str}/history", operation_id="aliasHistory",
         summary="Every change of one alias, newest first", guards=READ)
    async def alias_history(self, registry: RegistryClient, principal: Principal, model: ModelRef, alias: str,
                            page_size: PageSize = 50, page_token: PageToken = "") -> s.AliasHistory:
        return await registry.alias_history(principal, model, alias, page_size, page_token)

    @post("/{model:str}/previews", operation_id="createPreview",
          summary="Create a named preview alias, callable at once", guards=WRITE)
    async def create_preview(self, registry: RegistryClient, principal: Principal, model: ModelRef,
                             data: s.CreatePreview) -> s.AliasOut:
        return await registry.create_preview(principal, model, data)

    @delete("/{model:str}/previews/{name:str}", operation_id="deletePreview", summary="Delete a preview",
            guards=WRITE)
    async def delete_preview(self, registry: RegistryClient, principal: Principal, model: ModelRef,
                             name: str) -> None:
        await registry.delete_preview(principal, model, name)

    @get("/{model:str}/diff", operation_id="diffVersions", summary="What changed between two versions",
         guards=READ)
    async def diff(self, registry: RegistryClient, principal: Principal, model: ModelRef,
                   from_version: Annotated[int, Parameter(query="from", ge=1, le=s.INT32_MAX,
                                                          description="Older version")],
                   to_version: Annotated[int, Parameter(query="to", ge=1, le=s.INT32_MAX,
                                                        description="Newer version")],
                   ) -> s.VersionDiff:
        return await registry.diff(principal, model, from_version, to_version)


@get("/v1/resolve", operation_id="resolveReference", tags=["models"], security=SECURITY, guards=READ,
     summary='Resolve "name", "name@3", "name@production" or a preview to a concrete version')
async def resolve(registry: RegistryClient, principal: Principal,
                  reference: Annotated[str, Parameter(min_length=1, max_length=300)]) -> s.Resolved:
    return await registry.resolve(principal, reference)
