"""`dreamforge.model.build.prefetch`: training batches made ahead in a background thread, in order, bounded,
failures raised where they are consumed, and the thread gone when the consumer stops early (the deadline)."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("torch")

from dreamforge.model.build import TrainConfig, prefetch, train


def _wait_for(cond, timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_items_come_in_order_made_ahead_and_no_further_than_the_depth() -> None:
    made: list[int] = []
    makers: set[str] = set()

    def make(i: int) -> int:
        made.append(i)
        makers.add(threading.current_thread().name)
        return i * i

    items = prefetch(make, 50, depth=2)
    assert next(items) == 0
    # While the consumer holds item 0, the thread makes the next ones ahead...
    assert _wait_for(lambda: len(made) >= 3)
    time.sleep(0.3)
    # ...but no more than the queue holds plus the one waiting to be put.
    assert len(made) <= 1 + 2 + 1
    assert list(items) == [i * i for i in range(1, 50)]
    assert made == list(range(50))
    assert makers == {"training-batches"}


def test_a_failure_while_making_is_raised_to_the_consumer_after_the_items_before_it() -> None:
    def make(i: int) -> int:
        if i == 3:
            raise ValueError("scene 3 cannot be drawn")
        return i

    got: list[int] = []
    with pytest.raises(ValueError, match="scene 3"):
        for item in prefetch(make, 10):
            got.append(item)
    assert got == [0, 1, 2]


def test_stopping_early_stops_the_thread() -> None:
    made: list[int] = []
    items = prefetch(lambda i: made.append(i) or i, 1_000, depth=2)
    assert [next(items), next(items)] == [0, 1]
    items.close()  # what leaving a `for` loop does to the generator
    assert not any(t.name == "training-batches" for t in threading.enumerate())
    stopped_at = len(made)
    time.sleep(0.2)
    assert len(made) == stopped_at < 10


def test_training_past_its_deadline_stops_in_the_vision_stage_and_leaves_no_thread() -> None:
    from dreamforge.model.arch import TINY_SPEC, build_config, build_model, build_processor
    from dreamforge.model.tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    processor = build_processor(TINY_SPEC, tokenizer)
    model = build_model(build_config(TINY_SPEC, tokenizer), 0)
    cfg = TrainConfig(spec=TINY_SPEC, vision_steps=10_000, steps=10, vision_batch_size=4, eval_every=0, deadline_s=0.5)
    history = train(model, processor, cfg, log=lambda _: None)
    assert history["stopped_early"]
    assert 0 < len(history["vision_loss"]) < 10_000
    assert history["steps_done"] == 0
    assert not any(t.name == "training-batches" for t in threading.enumerate())
