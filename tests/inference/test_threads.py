"""How many torch threads a served generation gets: chosen per batch unless configured."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dreamforge.world import get_sample
from services.inference.runtime import base
from services.inference.runtime.base import (
    PARALLEL_BATCH,
    PARALLEL_PARAMETERS,
    SkillCall,
    _torch_default_threads,
    serving_threads,
)
from services.inference.runtime.torch_runtime import TorchRuntime


def test_small_batches_leave_a_core_to_the_platform_and_big_ones_use_every_default_thread() -> None:
    default = _torch_default_threads()
    assert serving_threads(0, 1) == serving_threads(0, PARALLEL_BATCH - 1) == max(1, default - 1)
    assert serving_threads(0, PARALLEL_BATCH) == serving_threads(0, 32) == default
    assert serving_threads(3, 1) == serving_threads(3, 32) == 3  # configured: always that


def test_big_models_use_every_default_thread_even_for_one_request() -> None:
    default = _torch_default_threads()
    assert serving_threads(0, 1, PARALLEL_PARAMETERS - 1) == max(1, default - 1)
    assert serving_threads(0, 1, PARALLEL_PARAMETERS) == serving_threads(0, 32, PARALLEL_PARAMETERS) == default
    assert serving_threads(3, 1, PARALLEL_PARAMETERS) == 3


@pytest.mark.parametrize("configured", [0, 3])
async def test_the_torch_runtime_sets_the_threads_of_each_generation(
        tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, configured: int) -> None:
    chosen: list[int] = []
    before = torch.get_num_threads()
    set_threads = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (chosen.append(n), set_threads(n)))
    runtime = TorchRuntime(tiny_model_dir, memory_budget_bytes=1 << 20, threads=configured)
    await runtime.start()
    call = SkillCall("query", get_sample("test", 0).image, "how many shapes are there?", max_new_tokens=2)
    try:
        runtime._generate_batch(None, [call], 2)
        runtime._generate_batch(None, [call] * PARALLEL_BATCH, 2)
    finally:
        await runtime.close()
        set_threads(before)
    assert chosen == [serving_threads(configured, 1), serving_threads(configured, PARALLEL_BATCH)]


async def test_the_torch_runtime_counts_its_models_parameters_for_the_threads(
        tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone request of a model at the size threshold gets every default thread (the threshold lowered to the
    tiny model's size, so the test needs no 100 M-parameter checkpoint)."""
    chosen: list[int] = []
    before = torch.get_num_threads()
    set_threads = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (chosen.append(n), set_threads(n)))
    runtime = TorchRuntime(tiny_model_dir, memory_budget_bytes=1 << 20)
    await runtime.start()
    assert runtime._skills is not None
    parameters = sum(p.numel() for p in runtime._skills.model.parameters())
    call = SkillCall("query", get_sample("test", 0).image, "how many shapes are there?", max_new_tokens=2)
    try:
        runtime._generate_batch(None, [call], 2)
        monkeypatch.setattr(base, "PARALLEL_PARAMETERS", parameters)
        runtime._generate_batch(None, [call], 2)
    finally:
        await runtime.close()
        set_threads(before)
    assert chosen == [max(1, _torch_default_threads() - 1), _torch_default_threads()]
