"""The one interface every model runtime implements, so the inference service (and its
tests) cannot tell which runtime answers.

A call names a skill, an image, the skill's text argument and, optionally, a LoRA
adapter (by the sha256 of its registry artifact, unpacked to a local directory). The
runtime owns the loaded base model and the adapters on it: it loads an adapter on first
use (or ahead of time via `load_adapter`, which is how `model.updated` hot-swaps), keeps
the most recently used ones within a memory budget, and evicts the least recently used.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from PIL import Image

#: Batches at least this big generate with all of torch's default threads (see `serving_threads`).
PARALLEL_BATCH = 8
#: Models with at least this many parameters generate every batch, a lone request's too, with all of them.
PARALLEL_PARAMETERS = 100_000_000


def serving_threads(configured: int, batch_size: int = 1, parameters: int = 0) -> int:
    """torch intra-op threads for one generation of `batch_size` rows by a model of `parameters`: `configured`
    when set (> 0); else torch's default for batches of PARALLEL_BATCH or more and for models of
    PARALLEL_PARAMETERS or more, and one thread fewer (at least 1) for a small batch of a small model.

    Why: a served model shares the machine with the platform's other processes (gateway, event consumers,
    NATS). A small model's small batch has matrices too small to gain much from a second thread, and a
    generation with one thread per core stalls at every parallel region whose other thread lost its core to
    them: on 2 cores a caption of the default model through the gateway took 198 ms with 2 threads and 108 ms
    with 1 (the bare call 95-107 ms), and Triton served 8 concurrent queries (batches of ~4) at 90-98
    requests/s this way against 70-75 with 2 threads (bench/RESULTS.md, "Gateway overhead" and "Dynamic
    batching on Triton"). Big batches keep every thread: in-process a batch of 8 queries took 33-39 ms with 2
    threads and 46-48 ms with 1; at concurrency 32 on Triton (batches of 13-16) the two settings measured
    level, 113-130 requests/s. So do big models, whose lone request is seconds of large matrices beside the
    platform's milliseconds: a query of a model shaped like SmolVLM-256M (`bench/shaped_model.py`, 200 M
    parameters) took 3.9 s bare on 2 threads and 6.1 s through the gateway on 1 (3.75-3.89 s on 2); models
    of 12 M and 40 M parameters gained only 5 and 10 % from the second thread in-process."""
    if configured > 0:
        return configured
    default = _torch_default_threads()
    if batch_size >= PARALLEL_BATCH or parameters >= PARALLEL_PARAMETERS:
        return default
    return max(1, default - 1)


@functools.cache
def _torch_default_threads() -> int:
    """torch's own default, read once (before anything here changes it)."""
    import torch

    return torch.get_num_threads()


Skill = Literal["caption", "query", "detect", "point", "chat"]
SKILLS: tuple[Skill, ...] = ("caption", "query", "detect", "point", "chat")


@dataclass(frozen=True)
class AdapterRef:
    """A LoRA adapter: registry artifact sha256 and the directory it is unpacked in
    (PEFT layout: adapter_config.json + adapter_model.safetensors)."""

    sha256: str
    path: Path


@dataclass(frozen=True)
class SkillCall:
    skill: Skill
    image: Image.Image
    #: caption: the length (short | normal | long); query/chat: the question; detect/point: the object
    text: str
    adapter: AdapterRef | None = None
    max_new_tokens: int | None = None


@dataclass(frozen=True)
class SkillOutput:
    text: str                                   # caption, answer, or the raw detect/point output
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)  # normalised x0,y0,x1,y1
    points: list[tuple[float, float]] = field(default_factory=list)               # normalised x,y
    input_tokens: int = 0
    output_tokens: int = 0


class AdapterLoadError(RuntimeError):
    """An adapter that cannot be put on the runtime's base (bad files, another architecture)."""


class TextStream:
    """What `stream` returns: an async iterator of text pieces whose `output` (the whole answer
    with its token counts, for usage) is set once the pieces are exhausted.

    A runtime may return any async iterator of str instead; the service then bills the streamed
    text without token counts. Closing it early (`aclose`) stops the generation."""

    def __init__(self, pieces: AsyncIterator[str]) -> None:
        self._pieces = pieces
        self.output: SkillOutput | None = None

    def __aiter__(self) -> TextStream:
        return self

    async def __anext__(self) -> str:
        return await self._pieces.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self._pieces, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclass(frozen=True)
class LoadedAdapter:
    sha256: str
    memory_bytes: int


class ModelRuntime(Protocol):
    name: str

    async def start(self) -> None:
        """Load the base model (and start the server, for Triton). Idempotent."""

    async def run(self, call: SkillCall) -> SkillOutput:
        """Answer one call. Concurrent calls are allowed; runtimes batch them where they can."""

    def stream(self, call: SkillCall) -> AsyncIterator[str]:
        """Yield the generated text in pieces (caption, query, chat); their concatenation equals
        `run(call).text`. Return a `TextStream` to report token counts."""

    async def load_adapter(self, adapter: AdapterRef) -> None:
        """Make `adapter` resident now (hot-swap ahead of the first request)."""

    async def loaded_adapters(self) -> list[LoadedAdapter]:
        ...

    async def close(self) -> None:
        ...
