"""A short run of the real training code still learns (loss falls, held-out accuracy beats chance).

About a minute on two CPU cores: a small spec, the two training stages of `dreamforge.model.build.train`
(vision warm-up, then the whole model on questions), then two held-out measurements on validation images:

- the vision tower's features, read by the auxiliary head, name the colour of the object under each patch far
  above chance and locate its box far better than a constant guess (the image is seen);
- teacher-forced exact match of the answers (equal to greedy exact match) rises from zero. In a run this short
  that is mostly answer formats and priors (a blind baseline that pairs each question with another image
  scores about as well), so this part checks the language side learns, and the probe checks the image side.

A training loop that does not step, steps on the wrong labels or detaches the vision tower fails it.
"""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")

from dreamforge.model.arch import ModelSpec, build_config, build_model, build_processor  # noqa: E402
from dreamforge.model.aux import patch_accuracy  # noqa: E402
from dreamforge.model.build import TrainConfig, teacher_forced_accuracy, train  # noqa: E402
from dreamforge.model.init import init_vision_tower  # noqa: E402
from dreamforge.model.tokenizer import build_tokenizer  # noqa: E402
from dreamforge.world import get_sample  # noqa: E402

SPEC = ModelSpec(
    image_size=48, patch_size=16, scale_factor=1, vision_hidden=96, vision_layers=2, vision_heads=4, vision_mlp=192,
    text_hidden=96, text_layers=2, text_heads=4, text_kv_heads=2, text_mlp=256, max_positions=384,
)  # fmt: skip


def test_short_training_run_learns() -> None:
    torch.set_num_threads(2)
    tokenizer = build_tokenizer(n_samples=150)
    processor = build_processor(SPEC, tokenizer)
    model = build_model(build_config(SPEC, tokenizer), seed=0)
    init_vision_tower(model, processor, n_images=64)
    before = teacher_forced_accuracy(model, processor, "validation", 40, by_kind=True)
    cfg = TrainConfig(
        seed=0, spec=SPEC, vision_steps=120, steps=220, batch_size=16, turns=4, warmup=30, eval_every=0,
        mix={"query": 1.0}, log_every=1000,
    )  # fmt: skip
    t0 = time.time()
    history = train(model, processor, cfg, log=lambda m: None)
    seconds = time.time() - t0
    after = teacher_forced_accuracy(model, processor, "validation", 40, by_kind=True)
    grid = SPEC.image_size // SPEC.patch_size
    probe = patch_accuracy(
        history["head"], model.model.vision_model, processor, [get_sample("validation", i, 48) for i in range(64)], grid
    )
    print(f"trained {seconds:.0f}s; before {before}; after {after}; probe {probe}")
    first, last = sum(history["loss"][:10]) / 10, sum(history["loss"][-20:]) / 20
    assert last < 0.5 * first, (first, last)
    assert history["vision_loss"][-1] < 0.6 * history["vision_loss"][0]
    # Chance per patch is 1/6 for colour (measured here: about 0.8). Always guessing the mean box is off by about
    # 0.2 per coordinate (measured here: about 0.11).
    assert probe["colour"] >= 0.6 and probe["box_mae"] <= 0.15, probe
    # Measured here: about 0.43 after training.
    assert before["query"] == 0.0 and after["query"] >= 0.33, (before, after)
