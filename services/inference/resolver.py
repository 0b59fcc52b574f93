"""From a request's model reference to what serves it: model, version, base and adapter.

References are resolved by the registry (`Resolve`: "name", "name@3", "name@alias",
"name@preview", "default"); results are cached for `ttl_s` per (tenant, reference) because
every request needs one and the answer changes only when an alias moves — and then
`model.updated` clears the tenant's entries at once (`invalidate`). A resolution that was
in flight while an invalidation happened is not cached (per-tenant generation counter), so
a promotion is never masked by a stale answer.

An empty reference means "default". When the tenant has no default model (registry
NOT_FOUND), the platform's built-in default model answers (`BUILTIN_DEFAULT`: base only,
model_id "default", version 0), so a fresh tenant can call skills at once.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import grpc

from dreamforge.grpcio import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from dreamforge.v1 import common_pb2, registry_pb2, registry_pb2_grpc

DEFAULT_REFERENCE = "default"
MAX_ENTRIES = 10_000


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


@dataclass(frozen=True)
class Route:
    model_id: str
    version: int
    alias: str
    is_preview: bool
    base_checkpoint: str       # "" = the default model
    artifact_sha256: str       # "" = base only


BUILTIN_DEFAULT = Route(model_id="default", version=0, alias="default", is_preview=False,
                        base_checkpoint="", artifact_sha256="")
_PASSED_THROUGH: dict[grpc.StatusCode, type[ServiceError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
}


class Resolver:
    def __init__(self, registry: registry_pb2_grpc.RegistryServiceStub, *, ttl_s: float, timeout_s: float = 10.0,
                 ) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._cache: OrderedDict[tuple[str, str], tuple[float, Route]] = OrderedDict()
        self._generation: dict[str, int] = {}

    async def resolve(self, caller: common_pb2.Caller, reference: str, *, fresh: bool = False) -> Route:
        reference = reference.strip() or DEFAULT_REFERENCE
        key = (caller.tenant_id, reference)
        hit = self._cache.get(key)
        if hit is not None and not fresh and hit[0] > time.monotonic():
            return hit[1]
        generation = self._generation.get(caller.tenant_id, 0)
        route = await self._ask_registry(caller, reference)
        if self.ttl_s > 0 and self._generation.get(caller.tenant_id, 0) == generation:
            self._cache[key] = (time.monotonic() + self.ttl_s, route)
            self._cache.move_to_end(key)
            while len(self._cache) > MAX_ENTRIES:
                self._cache.popitem(last=False)
        return route

    def invalidate(self, tenant_id: str) -> None:
        """Forget the tenant's resolutions (an alias or preview of one of its models moved)."""
        self._generation[tenant_id] = self._generation.get(tenant_id, 0) + 1
        for key in [k for k in self._cache if k[0] == tenant_id]:
            del self._cache[key]

    async def _ask_registry(self, caller: common_pb2.Caller, reference: str) -> Route:
        try:
            reply: registry_pb2.ResolveResponse = await self.registry.Resolve(
                registry_pb2.ResolveRequest(caller=caller, reference=reference), timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            code, details = exc.code(), exc.details() or ""
            if code == grpc.StatusCode.NOT_FOUND and reference == DEFAULT_REFERENCE:
                return BUILTIN_DEFAULT
            if code in _PASSED_THROUGH:
                raise _PASSED_THROUGH[code](details) from None
            raise Unavailable(f"the model registry could not resolve {reference!r}: {code.name} {details}") from None
        return Route(model_id=reply.model.id, version=reply.version.version, alias=reply.alias,
                     is_preview=reply.is_preview, base_checkpoint=reply.model.base_checkpoint,
                     artifact_sha256=reply.version.artifact_sha256)
