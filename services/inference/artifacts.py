"""Adapter files on local disk, fetched from the registry once per artifact.

A version's adapter is the registry artifact with its `artifact_sha256`: fetched with
`GetArtifact`, checked against that sha256 (never trusting the stream), and unpacked with
`dreamforge.adapters.unpack_adapter` (safe, atomic) under `$DREAMFORGE_HOME/adapters/<sha>/`.
Content addressing makes the directory shareable by every version and tenant with the same
bytes, and survives restarts. Concurrent requests for one sha share a single fetch.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from pathlib import Path

import grpc

from dreamforge.adapters import CONFIG_FILE, WEIGHTS_FILE, AdapterError, unpack_adapter
from dreamforge.grpcio import FailedPrecondition
from dreamforge.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from services.inference.resolver import Route, Unavailable
from services.inference.runtime.base import AdapterRef

log = logging.getLogger("dreamforge.inference.artifacts")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class AdapterFiles:
    def __init__(self, root: Path, registry: registry_pb2_grpc.RegistryServiceStub, *, max_bytes: int,
                 timeout_s: float = 60.0) -> None:
        self.root = root
        self.registry = registry
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self._inflight: dict[str, asyncio.Future[AdapterRef]] = {}

    def local(self, sha256: str) -> AdapterRef | None:
        path = self.root / sha256
        if (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file():
            return AdapterRef(sha256, path)
        return None

    async def ensure(self, caller: common_pb2.Caller, route: Route) -> AdapterRef:
        """The unpacked adapter of `route` (fetching it on first use)."""
        sha = route.artifact_sha256
        if not _SHA256.match(sha):
            raise FailedPrecondition(f"model {route.model_id} v{route.version} has a malformed artifact sha256")
        ready = self.local(sha)
        if ready is not None:
            return ready
        pending = self._inflight.get(sha)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(caller, route))
            self._inflight[sha] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(sha, None))
        return await asyncio.shield(pending)

    async def _fetch(self, caller: common_pb2.Caller, route: Route) -> AdapterRef:
        sha, where = route.artifact_sha256, f"model {route.model_id} v{route.version}"
        digest, parts, size = hashlib.sha256(), [], 0
        request = registry_pb2.GetVersionRequest(caller=caller, model=route.model_id, version=route.version)
        try:
            async for chunk in self.registry.GetArtifact(request, timeout=self.timeout_s):
                if chunk.sha256 and chunk.sha256 != sha:
                    raise FailedPrecondition(f"the registry sent another artifact for {where} than it resolved")
                size += len(chunk.data)
                if size > self.max_bytes:
                    raise FailedPrecondition(f"the adapter of {where} is larger than the {self.max_bytes} byte limit")
                digest.update(chunk.data)
                parts.append(chunk.data)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"cannot fetch the adapter of {where}: {exc.code().name} {exc.details()}") from None
        if digest.hexdigest() != sha:
            raise FailedPrecondition(f"the adapter of {where} failed its sha256 check")
        try:
            path = await asyncio.to_thread(unpack_adapter, b"".join(parts), self.root / sha)
        except AdapterError as exc:
            raise FailedPrecondition(f"the artifact of {where} is not a usable adapter: {exc}") from None
        log.info("adapter fetched", extra={"adapter": sha, "bytes": size, "model_id": route.model_id,
                                           "version": route.version})
        return AdapterRef(sha, path)
