"""One model runtime per base checkpoint, the least recently used closed beyond a limit.

A registry model names its base (`base_checkpoint`): empty or `default` = the platform's
default model; otherwise a local Hugging Face model directory on this server, absolute or
relative to the default model's parent (`models/`), which must lie inside an allowed root
(`models/` and DREAMFORGE_BASE_CHECKPOINT_ROOTS): a tenant must not make the server read
arbitrary paths. URIs are not fetched. Adapters live on their base's runtime, so tenants
sharing a base share its memory. Why a limit on bases: every base is a full model in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from dreamforge.grpcio import FailedPrecondition, ServiceError
from services.inference.runtime.base import ModelRuntime
from services.inference.runtime.factory import create_runtime
from services.inference.settings import InferenceSettings

log = logging.getLogger("dreamforge.inference.pool")

Factory = Callable[[InferenceSettings, Path], ModelRuntime]
DEFAULT_BASE_NAMES = ("", "default")


class RuntimePool:
    def __init__(self, settings: InferenceSettings, factory: Factory = create_runtime) -> None:
        self.settings = settings
        self.factory = factory
        self._runtimes: OrderedDict[Path, ModelRuntime] = OrderedDict()
        self._lock = asyncio.Lock()

    def base_dir(self, base_checkpoint: str) -> Path:
        """The local directory of a model's base checkpoint; FAILED_PRECONDITION when there is none."""
        if base_checkpoint.strip() in DEFAULT_BASE_NAMES:
            return self.settings.default_model.resolve()
        roots = self.settings.checkpoint_roots
        path = (roots[0] / base_checkpoint).resolve()  # an absolute base_checkpoint stays itself
        if not any(path.is_relative_to(root) for root in roots):
            raise FailedPrecondition(
                f"the model's base checkpoint {base_checkpoint!r} is outside the checkpoint directories this "
                f"inference server may load ({', '.join(map(str, roots))}; DREAMFORGE_BASE_CHECKPOINT_ROOTS adds "
                "more): register the model with an empty base_checkpoint to use the default model")
        if not (path / "config.json").is_file():
            raise FailedPrecondition(
                f"the model's base checkpoint {base_checkpoint!r} is not a model directory on this inference "
                "server (no config.json): register the model with an empty base_checkpoint to use the default "
                "model, or with the path of a local Hugging Face checkpoint")
        return path

    async def get(self, base_checkpoint: str) -> ModelRuntime:
        """The started runtime of `base_checkpoint` (loading it on first use)."""
        path = self.base_dir(base_checkpoint)
        async with self._lock:
            runtime = self._runtimes.get(path)
            if runtime is None:
                runtime = self._runtimes[path] = self.factory(self.settings, path)
                await self._evict_beyond_limit()
            self._runtimes.move_to_end(path)
        try:
            await runtime.start()
        except Exception as exc:  # kept in the pool: the next call tries again (the files may be fixed)
            log.error("base model cannot be loaded", extra={"base": str(path), "error": repr(exc)})
            raise ServiceError(f"the base model at {path} cannot be loaded: {type(exc).__name__}: {exc}") from exc
        return runtime

    def loaded(self) -> list[ModelRuntime]:
        return list(self._runtimes.values())

    async def _evict_beyond_limit(self) -> None:
        while len(self._runtimes) > self.settings.max_loaded_bases:
            path, old = self._runtimes.popitem(last=False)
            log.info("closing least recently used base model", extra={"base": str(path)})
            await old.close()

    async def close(self) -> None:
        async with self._lock:
            while self._runtimes:
                _, runtime = self._runtimes.popitem()
                await runtime.close()
