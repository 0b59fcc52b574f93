"""Input rules of the registry, each failing with an InvalidArgument that says what to fix:
names, aliases, tags, JSON documents, metrics, page sizes and page tokens, references.

Kept apart from `store.py` so the rules are listed in one place (the README and the
error messages quote the same patterns).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dreamforge.grpcio import InvalidArgument
from services.registry.records import Caller

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)
_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,100}$")  # must be a NATS subject token (events)
MODEL_ID_PREFIX = "mdl_"
DEFAULT_REFERENCE = "default"
DEFAULT_TAG = "default"
MAX_TAGS = 32
MAX_TEXT = 100_000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_IDEMPOTENCY_KEY = 200


def check_caller(caller: Caller) -> Caller:
    if not caller.tenant_id:
        raise InvalidArgument("caller.tenant_id is required: every registry call is scoped to a tenant")
    if not _TENANT.match(caller.tenant_id):
        raise InvalidArgument(f"caller.tenant_id {caller.tenant_id!r} must match ^[A-Za-z0-9_-]{{1,100}}$")
    return caller


def check_model_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgument(
            f"model name {name!r} is invalid: use 1-63 characters matching {NAME_PATTERN} "
            "(lowercase letters, digits, '.', '_', '-'; starting with a letter or digit)")
    if name.startswith(MODEL_ID_PREFIX):
        raise InvalidArgument(f"model name {name!r} is invalid: names starting with {MODEL_ID_PREFIX!r} "
                              "are reserved for model ids")
    if name == DEFAULT_REFERENCE:
        raise InvalidArgument("model name 'default' is reserved: Resolve('default') means the tenant's default "
                              "model; tag a model 'default' instead")
    return name


def check_alias_name(name: str, what: str = "alias") -> str:
    if not _NAME.match(name):
        raise InvalidArgument(f"{what} {name!r} is invalid: use 'production', 'staging' or 1-63 characters "
                              f"matching {NAME_PATTERN}")
    if name.isdigit():
        raise InvalidArgument(f"{what} {name!r} is invalid: an all-digit name would read as a version number "
                              "in references such as 'model@3'")
    return name


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    out = sorted(set(tags))
    for tag in out:
        if not _NAME.match(tag):
            raise InvalidArgument(f"tag {tag!r} is invalid: tags match {NAME_PATTERN}")
    if len(out) > MAX_TAGS:
        raise InvalidArgument(f"too many tags ({len(out)}): at most {MAX_TAGS}")
    return tuple(out)


def check_text(value: str, field: str, limit: int = MAX_TEXT) -> str:
    if len(value) > limit:
        raise InvalidArgument(f"{field} is {len(value)} characters long; the limit is {limit}")
    return value


def check_non_negative(value: int, field: str) -> int:
    if value < 0:
        raise InvalidArgument(f"{field} must be >= 0 (got {value})")
    return value


def check_version_number(value: int, field: str = "version") -> int:
    if value < 1:
        raise InvalidArgument(f"{field} must be a version number >= 1 (got {value})")
    return value


def check_idempotency_key(key: str) -> str:
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(f"idempotency_key is {len(key)} characters long; the limit is {MAX_IDEMPOTENCY_KEY}")
    return key


def parse_json_object(value: str, field: str) -> dict[str, Any]:
    """`{}` for an empty string; otherwise the value must be a JSON object."""
    if not value.strip():
        return {}
    try:
        doc = json.loads(value)
    except ValueError as exc:
        raise InvalidArgument(f"{field} is not valid JSON ({exc}); pass a JSON object such as "
                              '{"learning_rate": 0.0001}') from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{field} must be a JSON object ({{...}}), not a JSON {type(doc).__name__}")
    return doc


def check_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if not key:
            raise InvalidArgument("eval_metrics has an empty metric name")
        if not math.isfinite(value):
            raise InvalidArgument(f"eval_metrics[{key!r}] is {value}: metrics must be finite numbers")
        out[key] = float(value)
    return dict(sorted(out.items()))


def fingerprint(operation: str, params: Mapping[str, Any]) -> str:
    """A stable digest of a request's parameters, to tell a retry from a different request."""
    blob = json.dumps({"op": operation, **params}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# -- pagination ------------------------------------------------------------------------
def page_size(size: int) -> int:
    if size == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE}); "
                              f"got {size}")
    return size


def _scope_digest(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]


def encode_page_token(kind: str, scope: str, after: Any) -> str:
    """Opaque cursor: which listing it belongs to (kind + scope digest) and the last key seen."""
    raw = json.dumps({"k": kind, "s": _scope_digest(scope), "a": after}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str, kind: str, scope: str) -> Any:
    """The cursor's last key, or None for the first page."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
        ok = isinstance(doc, dict) and "a" in doc
    except (ValueError, binascii.Error):
        ok = False
    if not ok:
        raise InvalidArgument("page_token is not a token this API returned: pass next_page_token from the "
                              "previous response unchanged, or leave it empty for the first page")
    if doc.get("k") != kind or doc.get("s") != _scope_digest(scope):
        raise InvalidArgument("page_token belongs to a different listing (other call, model or filter): "
                              "restart from an empty page_token")
    return doc["a"]


# -- references ------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    model: str           # id, name, or "default"
    version: int = 0     # exact version when > 0
    alias: str = ""      # alias or preview name when set


def parse_reference(reference: str) -> Reference:
    """`name`, `name@3`, `name@production`, `name@<alias or preview>`, `default[@...]`; a
    model id works wherever a name does. A bare name means `name@production`."""
    ref = reference.strip()
    usage = "use 'name', 'name@3', 'name@production', 'name@<alias or preview>' or 'default'"
    if not ref:
        raise InvalidArgument(f"reference is empty: {usage}")
    model, sep, selector = ref.partition("@")
    if not model or (sep and not selector) or "@" in selector:
        raise InvalidArgument(f"reference {reference!r} is malformed: {usage}")
    if not sep:
        return Reference(model, alias="production")
    if selector.isdigit():
        return Reference(model, version=check_version_number(int(selector), f"version in {reference!r}"))
    return Reference(model, alias=check_alias_name(selector, f"alias in {reference!r}"))
