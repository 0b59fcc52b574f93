"""The runtime-neutral machinery: micro-batching and LRU adapter bookkeeping."""

from __future__ import annotations

import asyncio

import pytest

from services.inference.runtime.batcher import MicroBatcher
from services.inference.runtime.lru import AdapterLRU


async def test_concurrent_calls_with_one_key_run_as_one_batch() -> None:
    seen: list[tuple[str, list[int]]] = []

    async def execute(key: str, items: list[int]) -> list[int]:
        seen.append((key, items))
        await asyncio.sleep(0.01)
        return [i * 10 for i in items]

    batcher: MicroBatcher[str, int, int] = MicroBatcher(execute, max_batch=4, window_s=0.005)
    results = await asyncio.gather(*(batcher.submit("a" if i % 2 else "b", i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert all(len(items) <= 4 for _, items in seen)
    assert all(all((i % 2 == 1) == (key == "a") for i in items) for key, items in seen)  # keys never mixed
    assert len(seen) < 10  # batched
    await batcher.close()


async def test_groups_take_turns_and_errors_reach_only_their_batch() -> None:
    order: list[str] = []

    async def execute(key: str, items: list[int]) -> list[int]:
        order.append(key)
        if key == "bad":
            raise ValueError("boom")
        return items

    batcher: MicroBatcher[str, int, int] = MicroBatcher(execute, max_batch=2, window_s=0.005)
    hot = [asyncio.ensure_future(batcher.submit("hot", i)) for i in range(6)]
    bad = asyncio.ensure_future(batcher.submit("bad", 0))
    cold = asyncio.ensure_future(batcher.submit("cold", 1))
    assert await asyncio.gather(*hot) == list(range(6))
    with pytest.raises(ValueError, match="boom"):
        await bad
    assert await cold == 1
    assert order.index("cold") < len(order) - 1  # not starved behind every "hot" batch
    await batcher.close()


async def test_a_cancelled_call_is_dropped_from_its_batch() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def execute(key: str, items: list[int]) -> list[int]:
        batches.append(items)
        await gate.wait()
        return items

    batcher: MicroBatcher[str, int, int] = MicroBatcher(execute, max_batch=8, window_s=0)
    first = asyncio.ensure_future(batcher.submit("k", 0))
    await asyncio.sleep(0.01)  # batch [0] is running
    gone = asyncio.ensure_future(batcher.submit("k", 1))
    kept = asyncio.ensure_future(batcher.submit("k", 2))
    await asyncio.sleep(0)
    gone.cancel()
    gate.set()
    assert (await first, await kept) == (0, 2)
    assert batches == [[0], [2]]
    await batcher.close()


async def test_a_lone_sequential_client_never_waits_for_the_window() -> None:
    async def execute(key: str, items: list[int]) -> list[int]:
        return items

    batcher: MicroBatcher[str, int, int] = MicroBatcher(execute, max_batch=8, window_s=0.5)
    start = asyncio.get_running_loop().time()
    for i in range(5):
        assert await batcher.submit("k", i) == i
    assert asyncio.get_running_loop().time() - start < 0.5
    await asyncio.gather(*(batcher.submit("k", i) for i in range(3)))  # concurrency seen: the window applies now
    start = asyncio.get_running_loop().time()
    await batcher.submit("k", 9)
    assert asyncio.get_running_loop().time() - start >= 0.45
    await batcher.close()


def test_lru_evicts_least_recently_used_beyond_the_budget_but_never_the_new_one() -> None:
    lru = AdapterLRU(budget_bytes=250)
    assert lru.add("a", 100) == []
    assert lru.add("b", 100) == []
    lru.touch("a")
    assert lru.add("c", 100) == ["b"]
    assert [k for k, _ in lru.items()] == ["a", "c"]
    assert lru.add("huge", 1000) == ["a", "c"]  # alone over budget: kept, everything else goes
    assert lru.items() == [("huge", 1000)]
    assert lru.total_bytes == 1000 and "huge" in lru and "a" not in lru
