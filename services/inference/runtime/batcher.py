"""Micro-batching: concurrent calls that can share one forward pass run as one batch.

Why: on one model, a batch of 8 greedy generations costs little more than one (the weights
are read once per step for all rows), so under concurrent load batching multiplies
throughput (bench/inference_latency.py measures it). Calls are grouped by a key (for the
model runtimes: adapter + skill + token limit, which must be equal within one `generate`).

How: one worker task per batcher runs batches one at a time (the model is serialised
anyway). While a batch runs, new calls queue up and form the next batch without waiting.
When the worker wakes from idle and traffic has been concurrent lately (the last batch had
company), it first waits `window_s` for companions of the first call; a lone sequential
client never pays that wait. Groups are
served round-robin (a group that had more than `max_batch` waiting goes to the back), so a
busy adapter cannot starve the others. A call whose caller gave up (cancelled future) is
dropped before its batch runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")

Execute = Callable[[K, list[T]], Awaitable[Sequence[R]]]


class MicroBatcher(Generic[K, T, R]):
    def __init__(self, execute: Execute[K, T, R], *, max_batch: int, window_s: float) -> None:
        self.execute = execute
        self.max_batch = max(1, max_batch)
        self.window_s = max(0.0, window_s)
        self._groups: OrderedDict[K, list[tuple[T, asyncio.Future[R]]]] = OrderedDict()
        self._wakeup = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._concurrent = False  # did the last batch have company (or calls waiting behind it)?
        #: Sizes of the batches run so far (tests and benchmarks look at it).
        self.batch_sizes: list[int] = []

    async def submit(self, key: K, item: T) -> R:
        """Queue `item` and wait for its result (or the batch's exception)."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run(), name="micro-batcher")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._groups.setdefault(key, []).append((item, future))
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for entries in self._groups.values():
            for _, future in entries:
                if not future.done():
                    future.set_exception(RuntimeError("the model runtime was closed"))
        self._groups.clear()

    async def _run(self) -> None:
        idle = True
        while True:
            if not self._groups:
                idle = True
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if idle and self.window_s and self._concurrent \
                    and len(next(iter(self._groups.values()))) < self.max_batch:
                await asyncio.sleep(self.window_s)  # let concurrent calls join the first one
            idle = False
            key, batch = self._take()
            self._concurrent = len(batch) > 1 or bool(self._groups)
            if batch:
                await self._execute(key, batch)

    def _take(self) -> tuple[K, list[tuple[T, asyncio.Future[R]]]]:
        key, entries = next(iter(self._groups.items()))
        live = [(item, future) for item, future in entries if not future.done()]
        batch, rest = live[: self.max_batch], live[self.max_batch :]
        del self._groups[key]
        if rest:
            self._groups[key] = rest  # to the back: round-robin between groups
        return key, batch

    async def _execute(self, key: K, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batch_sizes.append(len(batch))
        try:
            results = await self.execute(key, [item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} calls returned {len(results)} results")
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.set_exception(RuntimeError("the model runtime was closed"))
            raise
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
