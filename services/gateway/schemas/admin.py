"""Request and response bodies of the admin and whoami routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

Scope = Literal["app", "rater", "ml", "finance", "admin"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class CreateTenant(msgspec.Struct, forbid_unknown_fields=True):
    name: Name


class TenantOut(msgspec.Struct):
    id: str
    name: str
    created_at: datetime


class CreateKey(msgspec.Struct, forbid_unknown_fields=True):
    tenant_id: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1)]
    name: Name | None = None
    rate_limit_per_minute: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class KeyOut(msgspec.Struct):
    id: str
    tenant_id: str
    scopes: list[str]
    name: str | None
    rate_limit_per_minute: int | None
    created_at: datetime
    revoked_at: datetime | None


class CreatedKey(msgspec.Struct):
    """The only response that ever contains the key itself: store it now."""

    id: str
    key: str
    tenant_id: str
    scopes: list[str]
    name: str | None
    rate_limit_per_minute: int | None
    created_at: datetime


class WhoAmI(msgspec.Struct):
    tenant_id: str
    key_id: str
    scopes: list[str]
