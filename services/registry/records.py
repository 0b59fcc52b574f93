"""The registry's domain records: what `RegistryStore` takes and returns.

Plain frozen dataclasses, independent of protobuf and SQL, so the store can be used
and tested without gRPC and the servicer stays a thin translation layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")

PRODUCTION = "production"
STAGING = "staging"


@dataclass(frozen=True)
class Caller:
    """Who is calling: every query is scoped by `tenant_id`; `key_id` is recorded as actor."""

    tenant_id: str
    key_id: str = ""


@dataclass(frozen=True)
class Model:
    id: str
    tenant_id: str
    name: str
    base_checkpoint: str
    parameter_count: int
    memory_bytes: int
    tags: tuple[str, ...]
    description: str
    created_at: datetime
    created_by: str
    latest_version: int


@dataclass(frozen=True)
class Version:
    model_id: str
    version: int
    parent_version: int
    artifact_sha256: str
    artifact_bytes: int
    training_config_json: str
    reward_function_json: str
    eval_metrics: dict[str, float]
    notes: str
    created_at: datetime
    created_by: str


@dataclass(frozen=True)
class Alias:
    model_id: str
    name: str
    version: int
    is_preview: bool
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class AliasChange:
    alias: str
    version: int
    previous_version: int
    action: str  # promote | rollback | preview | delete
    at: datetime
    actor: str


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str = ""


@dataclass(frozen=True)
class Resolution:
    model: Model
    version: Version
    alias: str  # empty when the reference named an exact version
    is_preview: bool


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: str
    after: str


@dataclass(frozen=True)
class Diff:
    before: Version
    after: Version
    changes: list[FieldChange] = field(default_factory=list)
