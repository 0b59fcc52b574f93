"""The trainer's calls to other services: the registry (models, artifacts, new versions,
promotion) and the feedback service (reward-function definitions by id and version).

Registry errors the caller can fix (NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION) pass
through with their messages; anything else is UNAVAILABLE naming the dependency.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import grpc

from dreamforge.grpcio import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from dreamforge.rewards import RewardDefinitionError, parse_reward_function
from dreamforge.v1 import common_pb2, feedback_pb2, feedback_pb2_grpc, registry_pb2, registry_pb2_grpc


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


_PASSED = {grpc.StatusCode.NOT_FOUND: NotFound, grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
           grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition}


def _translate(exc: grpc.aio.AioRpcError, what: str) -> ServiceError:
    cls = _PASSED.get(exc.code())
    if cls is not None:
        return cls(exc.details() or what)
    return Unavailable(f"{what}: {exc.code().name} {exc.details() or ''}".strip())


@dataclass(frozen=True)
class Base:
    model_id: str
    model_name: str
    base_checkpoint: str
    version: int            # 0 = the base checkpoint itself
    artifact_sha256: str    # "" = no adapter


class Registry:
    def __init__(self, stub: registry_pb2_grpc.RegistryServiceStub, timeout_s: float) -> None:
        self.stub = stub
        self.timeout_s = timeout_s

    async def _call(self, method: str, request: Any, what: str) -> Any:
        try:
            return await getattr(self.stub, method)(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, what) from None

    async def base(self, caller: common_pb2.Caller, model: str, version: int) -> Base:
        """The model and the version a job starts from: `version`, else production, else the base."""
        m = await self._call("GetModel", registry_pb2.GetModelRequest(caller=caller, model=model),
                             f"the registry could not find model {model!r}")
        if version:
            v = await self._call("GetVersion", registry_pb2.GetVersionRequest(caller=caller, model=m.id,
                                                                             version=version),
                                 f"the registry could not find version {version} of {model!r}")
            return Base(m.id, m.name, m.base_checkpoint, v.version, v.artifact_sha256)
        try:
            found = await self.stub.Resolve(registry_pb2.ResolveRequest(caller=caller, reference=f"{m.id}@production"),
                                            timeout=self.timeout_s)
            return Base(m.id, m.name, m.base_checkpoint, found.version.version, found.version.artifact_sha256)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
                return Base(m.id, m.name, m.base_checkpoint, 0, "")
            raise _translate(exc, "the registry could not resolve the production version") from None

    async def artifact(self, caller: common_pb2.Caller, model_id: str, version: int) -> bytes:
        try:
            chunks = [c.data async for c in self.stub.GetArtifact(
                registry_pb2.GetVersionRequest(caller=caller, model=model_id, version=version), timeout=self.timeout_s)]
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, "the registry could not send the base version's adapter") from None
        return b"".join(chunks)

    async def create_version(self, caller: common_pb2.Caller, model_id: str,
                             **fields: Any) -> registry_pb2.ModelVersion:
        return await self._call("CreateVersion", registry_pb2.CreateVersionRequest(caller=caller, model=model_id,
                                                                                   **fields),
                                "the registry did not register the new version")

    async def promote(self, caller: common_pb2.Caller, model_id: str, version: int, alias: str) -> None:
        await self._call("Promote", registry_pb2.PromoteRequest(caller=caller, model=model_id, version=version,
                                                                alias=alias),
                         f"the registry did not move {alias!r}")


class RewardFunctions:
    """Definitions by id/version from the feedback service, or inline JSON, always validated."""

    def __init__(self, stub: feedback_pb2_grpc.FeedbackServiceStub | None, timeout_s: float) -> None:
        self.stub = stub
        self.timeout_s = timeout_s

    @staticmethod
    def parse_inline(text: str, field: str = "reward_function") -> dict[str, Any]:
        try:
            definition = json.loads(text) if isinstance(text, str) else text
            return parse_reward_function(definition).to_json()
        except RewardDefinitionError as exc:
            raise InvalidArgument(f"{field}.{exc.field}: {exc.message}") from None
        except (ValueError, TypeError, AttributeError) as exc:
            raise InvalidArgument(f"{field} is not a valid reward function: {exc}") from None

    async def fetch(self, caller: common_pb2.Caller, fn_id: str, version: int) -> tuple[dict[str, Any], int]:
        """(validated definition, version) of reward function `fn_id` (version 0 = latest)."""
        if self.stub is None:
            raise Unavailable("the feedback service is not configured: send reward_function inline")
        try:
            get = getattr(self.stub, "GetRewardFunction", None)
            if get is not None and hasattr(feedback_pb2, "GetRewardFunctionRequest"):
                fn = await get(feedback_pb2.GetRewardFunctionRequest(caller=caller, id=fn_id, version=version),
                               timeout=self.timeout_s)
            else:
                fn = await self._find(caller, fn_id, version)
        except grpc.aio.AioRpcError as exc:
            raise _translate(exc, f"the feedback service could not give reward function {fn_id!r}") from None
        return self.parse_inline(fn.definition_json, f"reward function {fn_id!r}"), int(fn.version)

    async def _find(self, caller: common_pb2.Caller, fn_id: str, version: int) -> Any:
        token, best = "", None
        while True:
            page = await self.stub.ListRewardFunctions(  # type: ignore[union-attr]
                feedback_pb2.ListRewardFunctionsRequest(caller=caller, page=common_pb2.PageRequest(
                    page_size=200, page_token=token)), timeout=self.timeout_s)
            for fn in page.functions:
                if fn.id == fn_id and (fn.version == version or (not version and (best is None
                                                                                  or fn.version > best.version))):
                    best = fn
            token = page.page.next_page_token
            if not token:
                break
        if best is None:
            raise NotFound(f"reward function {fn_id!r}" + (f" version {version}" if version else "") + " not found")
        return best
