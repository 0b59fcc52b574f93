"""Samples, splits and task sampling.

Each split owns a disjoint range of scene seeds, so the held-out `test` split is never drawn by training
(which reads `train` only) or by model selection (which reads `validation`). `get_sample(split, index)`
is a pure function of its arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from PIL import Image

from dreamforge.world import tasks as T
from dreamforge.world.scene import MAX_OBJECTS, Box, Point, WorldObject, render_scene

# split name -> (first seed, number of seeds); the ranges do not overlap.
SPLITS: dict[str, tuple[int, int]] = {
    "train": (0, 1_000_000_000),
    "validation": (1_000_000_000, 10_000_000),
    "test": (2_000_000_000, 10_000_000),
}
SKILLS: tuple[str, ...] = ("caption", "query", "detect", "point")
DEFAULT_MIX: dict[str, float] = {"caption": 0.2, "query": 0.4, "detect": 0.2, "point": 0.2}
ABSENT_RATE = 0.15  # share of detect/point tasks that name an object not in the image (answer `none`)


def split_seed(split: str, index: int) -> int:
    first, count = SPLITS[split]
    if not 0 <= index < count:
        raise IndexError(f"{split} has {count} samples; index {index} is out of range")
    return first + index


@dataclass
class Sample:
    """One image of the world with its ground truth."""

    split: str
    index: int
    seed: int
    image: Image.Image = field(repr=False)
    objects: list[WorldObject]
    background: str

    def caption(self, length: str = "normal") -> str:
        return T.caption(self.objects, self.background, length)

    @cached_property
    def _questions(self) -> list[T.QA]:
        return T.questions(self.objects)

    def questions(self) -> list[T.QA]:
        return list(self._questions)

    def detect_targets(self) -> dict[str, list[Box]]:
        return T.detect_targets(self.objects)

    def point_targets(self) -> dict[str, list[Point]]:
        return T.point_targets(self.objects)

    # -- tasks -------------------------------------------------------------------------------------
    def task(self, skill: str, rng: np.random.Generator, target_power: float = 0.0) -> T.Task:
        """One task of `skill`, drawn with `rng` (query types and yes/no answers balanced). A detect / point task
        names a present object with odds (number of matching objects) ** `target_power`: 0 = every name alike
        (the world's own, as evaluation draws them); more asks for several boxes or points more often."""
        if skill == "caption":
            length = T.CAPTION_LENGTHS[int(rng.integers(3))]
            return T.Task("caption", length, T.caption_prompt(length), self.caption(length))
        if skill == "query":
            by_type: dict[str, list[T.QA]] = {}
            for qa in self._questions:
                by_type.setdefault(qa.qtype, []).append(qa)
            qtype = sorted(by_type)[int(rng.integers(len(by_type)))]
            pool = by_type[qtype]
            answers = sorted({qa.answer for qa in pool})
            if qtype in ("existence", "comparison", "count") and len(answers) > 1:
                want = answers[int(rng.integers(len(answers)))]  # balance answers, not questions
                pool = [qa for qa in pool if qa.answer == want]
            qa = pool[int(rng.integers(len(pool)))]
            return T.Task("query", qa.qtype, qa.question, qa.answer, qa.refs)
        if skill in ("detect", "point"):
            targets = self.detect_targets() if skill == "detect" else self.point_targets()
            if rng.random() < ABSENT_RATE:
                absent = T.absent_names(self.objects)
                name, kind = absent[int(rng.integers(len(absent)))], "absent"
            else:
                names = sorted(targets)
                if target_power:  # 0 keeps the plain draw, so earlier builds' task streams stay reproducible
                    odds = np.array([len(targets[n]) for n in names], dtype=float) ** target_power
                    name, kind = names[int(rng.choice(len(names), p=odds / odds.sum()))], "present"
                else:
                    name, kind = names[int(rng.integers(len(names)))], "present"
            refs = tuple(i for i, o in enumerate(self.objects) if name in (o.shape, o.name))
            if skill == "detect":
                answer = T.format_boxes(targets.get(name, []))  # type: ignore[arg-type]
                return T.Task("detect", kind, T.detect_prompt(name), answer, refs)
            answer = T.format_points(targets.get(name, []))  # type: ignore[arg-type]
            return T.Task("point", kind, T.point_prompt(name), answer, refs)
        raise ValueError(f"unknown skill {skill!r}")

    def training_tasks(self, rng: np.random.Generator, k: int, mix: dict[str, float] | None = None,
                       target_power: float = 0.0) -> list[T.Task]:
        """`k` distinct tasks drawn from the skill mix (for one multi-turn training conversation); `target_power`:
        see `task`."""
        mix = mix or DEFAULT_MIX
        skills, weights = list(mix), np.array(list(mix.values()), dtype=float)
        out: list[T.Task] = []
        seen: set[str] = set()
        for _ in range(4 * k):
            t = self.task(skills[int(rng.choice(len(skills), p=weights / weights.sum()))], rng, target_power)
            if t.prompt not in seen:
                seen.add(t.prompt)
                out.append(t)
            if len(out) == k:
                break
        return out

    def eval_tasks(self) -> list[T.Task]:
        """The fixed evaluation tasks of this sample: one question per available type, one caption
        (length cycling with the index), one detect and one point (seeded by the sample's seed)."""
        rng = np.random.default_rng([self.seed, 7])
        types = sorted({qa.qtype for qa in self._questions})
        length = T.CAPTION_LENGTHS[self.index % 3]
        out = [T.Task("caption", length, T.caption_prompt(length), self.caption(length))]
        for qtype in types:
            pool = [qa for qa in self._questions if qa.qtype == qtype]
            answers = sorted({qa.answer for qa in pool})
            if qtype in ("existence", "comparison", "count") and len(answers) > 1:
                want = answers[int(rng.integers(len(answers)))]
                pool = [qa for qa in pool if qa.answer == want]
            qa = pool[int(rng.integers(len(pool)))]
            out.append(T.Task("query", qa.qtype, qa.question, qa.answer, qa.refs))
        out.append(self.task("detect", rng))
        out.append(self.task("point", rng))
        return out


def get_sample(
    split: str,
    index: int,
    image_size: int = 96,
    max_objects: int = MAX_OBJECTS,
    count_weights: Sequence[float] | None = None,
) -> Sample:
    seed = split_seed(split, index)
    scene = render_scene(seed, image_size, max_objects, count_weights)
    return Sample(split, index, seed, scene.image, scene.objects, scene.background)


def iter_samples(split: str, start: int, count: int, image_size: int = 96):
    for i in range(start, start + count):
        yield get_sample(split, i, image_size)
