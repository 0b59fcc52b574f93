"""The ModelRuntime contract, for every runtime (`runtime_name`): skills, streaming, batching,
many LoRA adapters on one base with LRU eviction. Plumbing on the tiny random model."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dreamforge.world import get_sample
from services.inference.runtime.base import SKILLS, AdapterRef, ModelRuntime, SkillCall
from tests.inference.conftest import Adapter, RuntimeFactory

IMAGE = get_sample("test", 0).image
QUESTION = "how many shapes are there?"


def _ref(adapter: Adapter) -> AdapterRef:
    return AdapterRef(adapter.path.name, adapter.path)


async def _answer(runtime: ModelRuntime, adapter: Adapter | None = None, question: str = QUESTION) -> str:
    call = SkillCall("query", IMAGE, question, adapter=_ref(adapter) if adapter else None)
    return (await runtime.run(call)).text


async def test_every_skill_answers_with_token_counts(make_runtime: RuntimeFactory, tiny_model_dir: Path) -> None:
    runtime = await make_runtime(tiny_model_dir)
    texts = {"caption": "short", "query": QUESTION, "detect": "red circle", "point": "Red Circle.", "chat": "hi"}
    outputs = await asyncio.gather(*(runtime.run(SkillCall(s, IMAGE, texts[s], max_new_tokens=8 if s == "chat"
                                                           else None)) for s in SKILLS))
    for skill, out in zip(SKILLS, outputs, strict=True):
        assert out.text, skill
        assert out.input_tokens > 0 and 0 < out.output_tokens, skill
        assert all(0 <= v <= 1 for box in out.boxes for v in box)
        assert all(0 <= v <= 1 for p in out.points for v in p)
    assert outputs[SKILLS.index("chat")].output_tokens <= 8


async def test_stream_concatenates_to_the_unary_answer(make_runtime: RuntimeFactory, tiny_model_dir: Path,
                                                       tiny_adapters: list[Adapter]) -> None:
    runtime = await make_runtime(tiny_model_dir)
    for adapter in (None, tiny_adapters[0]):
        call = SkillCall("query", IMAGE, QUESTION, adapter=_ref(adapter) if adapter else None)
        unary = await runtime.run(call)
        stream = runtime.stream(call)
        pieces = [piece async for piece in stream]
        assert len(pieces) > 1
        assert "".join(pieces) == unary.text
        output = getattr(stream, "output", None)
        if output is not None:
            assert (output.text, output.input_tokens, output.output_tokens) == \
                (unary.text, unary.input_tokens, unary.output_tokens)


async def test_leaving_a_stream_early_frees_the_model(make_runtime: RuntimeFactory, tiny_model_dir: Path) -> None:
    runtime = await make_runtime(tiny_model_dir)
    stream = runtime.stream(SkillCall("caption", IMAGE, "long"))
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert await asyncio.wait_for(_answer(runtime), timeout=10)


async def test_concurrent_calls_are_batched_with_the_same_answers(make_runtime: RuntimeFactory,
                                                                  tiny_model_dir: Path) -> None:
    runtime = await make_runtime(tiny_model_dir, batch_window_ms=20)
    alone = await _answer(runtime)
    together = await asyncio.gather(*(_answer(runtime) for _ in range(6)))
    assert together == [alone] * 6
    batcher = getattr(runtime, "batcher", None)
    if batcher is not None:  # in-process runtime: the batches are visible
        assert max(batcher.batch_sizes) > 1


async def test_adapters_share_one_base_and_base_calls_ignore_them(make_runtime: RuntimeFactory,
                                                                  tiny_model_dir: Path,
                                                                  tiny_adapters: list[Adapter]) -> None:
    runtime = await make_runtime(tiny_model_dir)
    base = await _answer(runtime)
    first, second = (await asyncio.gather(*(_answer(runtime, a) for a in tiny_adapters[:2])))
    assert len({base, first, second}) == 3  # each adapter changes the answers, differently
    assert await _answer(runtime) == base  # adapters loaded: base-only calls are unaffected
    assert await _answer(runtime, tiny_adapters[0]) == first
    loaded = await runtime.loaded_adapters()
    assert {a.sha256 for a in loaded} == {a.path.name for a in tiny_adapters[:2]}
    assert all(a.memory_bytes > 0 for a in loaded)


async def test_lru_eviction_keeps_adapters_within_the_budget(make_runtime: RuntimeFactory, tiny_model_dir: Path,
                                                             tiny_adapters: list[Adapter]) -> None:
    probe = await make_runtime(tiny_model_dir)
    await probe.load_adapter(_ref(tiny_adapters[0]))
    size = (await probe.loaded_adapters())[0].memory_bytes
    runtime = await make_runtime(tiny_model_dir, adapter_memory_budget_mb=2.5 * size / (1024 * 1024))
    expected = {}
    for adapter in tiny_adapters:  # three adapters, room for two
        expected[adapter.path.name] = await _answer(runtime, adapter)
    resident = [a.sha256 for a in await runtime.loaded_adapters()]
    assert sorted(resident) == sorted(a.path.name for a in tiny_adapters[1:])  # the oldest was evicted
    assert await _answer(runtime, tiny_adapters[0]) == expected[tiny_adapters[0].path.name]  # reloaded, same answers
    resident = {a.sha256 for a in await runtime.loaded_adapters()}
    assert resident == {tiny_adapters[0].path.name, tiny_adapters[2].path.name}
    assert sum(a.memory_bytes for a in await runtime.loaded_adapters()) <= 2.5 * size
