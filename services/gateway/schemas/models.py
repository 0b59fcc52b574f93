"""JSON mirrors of the registry's proto messages (timestamps ISO 8601, configs as objects)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

#: Largest accepted values: versions are int32 in the registry's protos; sizes are int64 there, capped here at
#: the largest integer a JSON number holds exactly (so the documented maximum is exact too). Larger is a 400.
INT32_MAX = 2**31 - 1
JSON_INT_MAX = 2**53 - 1

ModelName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
AliasName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
VersionNumber = Annotated[int, msgspec.Meta(ge=1, le=INT32_MAX)]
ParentVersion = Annotated[int, msgspec.Meta(ge=0, le=INT32_MAX, description="0 = a base version")]
Count = Annotated[int, msgspec.Meta(ge=0, le=JSON_INT_MAX)]


class CreateModel(msgspec.Struct, forbid_unknown_fields=True):
    name: ModelName
    base_checkpoint: str = ""
    parameter_count: Count = 0
    memory_bytes: Count = 0
    tags: list[Annotated[str, msgspec.Meta(min_length=1, max_length=100)]] = []
    description: Annotated[str, msgspec.Meta(max_length=10_000)] = ""


class ModelOut(msgspec.Struct):
    id: str
    tenant_id: str
    name: str
    base_checkpoint: str
    parameter_count: int
    memory_bytes: int
    tags: list[str]
    description: str
    created_at: datetime | None
    created_by: str
    latest_version: int


class OpenAIModel(msgspec.Struct):
    """A model as OpenAI's `GET /v1/models` lists it: `id` is what `model` takes in a skill or chat call."""

    id: str
    created: int
    owned_by: str
    object: str = "model"


class ModelList(msgspec.Struct):
    models: list[ModelOut]
    next_page_token: str
    object: str = "list"
    data: Annotated[list[OpenAIModel], msgspec.Meta(
        description="The same page in OpenAI's shape (`default` first on the first page), so OpenAI clients and "
                    "tools can list the models that chat completions take")] = []


class CreateVersion(msgspec.Struct, forbid_unknown_fields=True):
    parent_version: ParentVersion | None = None
    artifact_base64: str | None = None
    training_config: dict[str, Any] = {}
    reward_function: dict[str, Any] = {}
    eval_metrics: dict[str, float] = {}
    notes: Annotated[str, msgspec.Meta(max_length=10_000)] = ""


class VersionOut(msgspec.Struct):
    model_id: str
    version: int
    parent_version: int
    artifact_sha256: str
    artifact_bytes: int
    training_config: dict[str, Any]
    reward_function: dict[str, Any]
    eval_metrics: dict[str, float]
    notes: str
    created_at: datetime | None
    created_by: str


class VersionList(msgspec.Struct):
    versions: list[VersionOut]
    next_page_token: str


class Promote(msgspec.Struct, forbid_unknown_fields=True):
    version: VersionNumber
    alias: AliasName = "production"


class Rollback(msgspec.Struct, forbid_unknown_fields=True):
    alias: AliasName = "production"
    to_version: VersionNumber | None = None


class CreatePreview(msgspec.Struct, forbid_unknown_fields=True):
    name: AliasName
    version: VersionNumber


class AliasOut(msgspec.Struct):
    model_id: str
    name: str
    version: int
    is_preview: bool
    updated_at: datetime | None
    updated_by: str


class AliasList(msgspec.Struct):
    aliases: list[AliasOut]


class AliasChangeOut(msgspec.Struct):
    alias: str
    version: int
    previous_version: int
    action: str
    at: datetime | None
    actor: str


class AliasHistory(msgspec.Struct):
    changes: list[AliasChangeOut]
    next_page_token: str


class FieldChangeOut(msgspec.Struct):
    field: str
    before: str
    after: str


class VersionDiff(msgspec.Struct):
    from_version: VersionOut = msgspec.field(name="from")
    to_version: VersionOut = msgspec.field(name="to")
    changes: list[FieldChangeOut] = []


class Resolved(msgspec.Struct):
    model: ModelOut
    version: VersionOut
    alias: str
    is_preview: bool
