"""The synthetic world: determinism, disjoint splits and ground truth that holds up independently."""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import Counter

import numpy as np
import pytest

from dreamforge.world import (
    COLOURS,
    PLURALS,
    QUESTION_TYPES,
    SHAPES,
    SPLITS,
    format_boxes,
    format_points,
    get_sample,
    parse_boxes,
    parse_points,
    readable,
    render_scene,
)
from dreamforge.world.scene import MARGIN, SIZE_RANGES
from dreamforge.world.tasks import POSITION_MARGIN

N = 150


def _digest(sample) -> str:
    return hashlib.sha256(sample.image.tobytes()).hexdigest()


def test_same_seed_same_scene_and_pixels() -> None:
    for i in (0, 7, 123):
        a, b = get_sample("train", i), get_sample("train", i)
        assert a.objects == b.objects and a.background == b.background
        assert _digest(a) == _digest(b)
        assert a.questions() == b.questions() and a.eval_tasks() == b.eval_tasks()
    assert _digest(get_sample("train", 0)) != _digest(get_sample("train", 1))
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    s = get_sample("train", 5)
    assert s.training_tasks(rng_a, 5) == s.training_tasks(rng_b, 5)


def test_splits_are_disjoint_seed_ranges_without_duplicate_images() -> None:
    ranges = sorted(SPLITS.values())
    for (a0, an), (b0, _) in itertools.pairwise(ranges):
        assert a0 + an <= b0
    seen: dict[str, str] = {}
    for split in SPLITS:
        for i in range(N):
            d = _digest(get_sample(split, i, image_size=48))
            assert seen.setdefault(d, split) == split, f"{split}[{i}] duplicates an image of {seen[d]}"
    with pytest.raises(IndexError):
        get_sample("test", SPLITS["test"][1])


def _colour_distance(pixel: np.ndarray, colour: str) -> float:
    return float(np.linalg.norm(pixel.astype(float) - np.array(COLOURS[colour])))


def test_objects_geometry_and_pixels_match_ground_truth() -> None:
    for i in range(N):
        s = get_sample("test", i)
        assert 1 <= len(s.objects) <= 6
        px = np.asarray(s.image)
        h, w, _ = px.shape
        for o in s.objects:
            x0, y0, x1, y1 = o.box
            assert MARGIN - 1e-9 <= x0 < x1 <= 1 - MARGIN + 1e-9 and MARGIN - 1e-9 <= y0 < y1 <= 1 - MARGIN + 1e-9
            lo, hi = SIZE_RANGES[o.size]
            assert lo - 1e-9 <= x1 - x0 <= hi + 1e-9
            cx, cy = o.centre
            assert x0 < cx < x1 and y0 < cy < y1
            # The pixels at the centre have the object's colour (jitter 18 plus light noise, averaged 3 x 3).
            r, c = int(cy * h), int(cx * w)
            centre_px = px[r - 1 : r + 2, c - 1 : c + 2].reshape(-1, 3).mean(0)
            nearest = min(COLOURS, key=lambda c: _colour_distance(centre_px, c))
            assert nearest == o.colour, (i, o, centre_px)
        for a in s.objects:  # no two objects overlap
            for b in s.objects:
                if a is not b:
                    assert a.box[2] <= b.box[0] or b.box[2] <= a.box[0] or a.box[3] <= b.box[1] or b.box[3] <= a.box[1]
        # Outside every box the image is background (light).
        mask = np.ones((h, w), dtype=bool)
        for o in s.objects:
            mask[int(o.box[1] * h) : int(np.ceil(o.box[3] * h)), int(o.box[0] * w) : int(np.ceil(o.box[2] * w))] = False
        assert px[mask].min() > 150


def _answer(question: str, objects) -> str:
    """An independent reading of every question template the world asks."""
    q = question.rstrip("?")
    singular = {p: s for s, p in PLURALS.items()}

    def find(ref: str):
        words = ref.split()
        hits = [o for o in objects if all(w in (o.colour, o.shape, o.size) for w in words)]
        assert len(hits) == 1, (question, hits)
        return hits[0]

    if m := re.fullmatch(r"what colour is the (.+)", q):
        return find(m[1]).colour
    if m := re.fullmatch(r"what shape is the (.+) object", q):
        return find(m[1]).shape
    if m := re.fullmatch(r"is the (.+) small or large", q):
        return find(m[1]).size
    if m := re.fullmatch(r"is the (.+) on the left or on the right", q):
        x = find(m[1]).centre[0]
        assert abs(x - 0.5) >= POSITION_MARGIN  # asked only away from the midline
        return "left" if x < 0.5 else "right"
    if m := re.fullmatch(r"is the (.+) at the top or at the bottom", q):
        y = find(m[1]).centre[1]
        assert abs(y - 0.5) >= POSITION_MARGIN
        return "top" if y < 0.5 else "bottom"
    if q == "how many shapes are there":
        return str(len(objects))
    if m := re.fullmatch(r"how many (\w+) shapes are there", q):
        return str(sum(o.colour == m[1] for o in objects))
    if m := re.fullmatch(r"how many (\w+) (\w+) are there", q):
        return str(sum(o.colour == m[1] and o.shape == singular[m[2]] for o in objects))
    if m := re.fullmatch(r"how many (\w+) are there", q):
        return str(sum(o.shape == singular[m[1]] for o in objects))
    if m := re.fullmatch(r"is there an? (\w+) (\w+)", q):
        return "yes" if any(o.colour == m[1] and o.shape == m[2] for o in objects) else "no"
    if m := re.fullmatch(r"is there an? (\w+)", q):
        return "yes" if any(o.shape == m[1] for o in objects) else "no"
    if m := re.fullmatch(r"are there more (\w+) shapes than (\w+) shapes", q):
        return "yes" if sum(o.colour == m[1] for o in objects) > sum(o.colour == m[2] for o in objects) else "no"
    if m := re.fullmatch(r"are there more (\w+) than (\w+)", q):
        a, b = singular[m[1]], singular[m[2]]
        return "yes" if sum(o.shape == a for o in objects) > sum(o.shape == b for o in objects) else "no"
    raise AssertionError(f"unknown question template: {question}")


def test_every_answer_rederived_independently() -> None:
    types: Counter = Counter()
    for i in range(N):
        s = get_sample("validation", i)
        for qa in s.questions():
            assert qa.answer == _answer(qa.question, s.objects), qa
            types[qa.qtype] += 1
    assert set(types) == set(QUESTION_TYPES)


def test_eval_tasks_cover_every_skill_and_balance_yes_no() -> None:
    answers: Counter = Counter()
    skills: Counter = Counter()
    for i in range(N):
        for t in get_sample("test", i).eval_tasks():
            skills[t.skill] += 1
            if t.kind in ("existence", "comparison"):
                answers[t.answer] += 1
    assert skills["caption"] == skills["detect"] == skills["point"] == N
    assert 0.35 < answers["yes"] / (answers["yes"] + answers["no"]) < 0.65


def _mentions(caption: str) -> Counter:
    numbers = {"a": 1, "an": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
    singular = {p: s for s, p in PLURALS.items()} | {s: s for s in SHAPES}
    pat = r"\b(a|an|two|three|four|five|six) (?:small |large )?(\w+) (\w+)\b"
    out: Counter = Counter()
    for n, colour, shape in re.findall(pat, caption):
        if colour in COLOURS and shape in singular:
            out[(colour, singular[shape])] += numbers[n]
    return out


def test_captions_mention_every_object_and_nothing_else() -> None:
    for i in range(N):
        s = get_sample("train", i)
        truth = Counter((o.colour, o.shape) for o in s.objects)
        for length in ("short", "normal", "long"):
            assert _mentions(s.caption(length)) == truth, (length, s.caption(length))
        assert s.background in s.caption("normal") and s.background in s.caption("long")


def test_detect_and_point_targets_and_formats() -> None:
    for i in range(N):
        s = get_sample("test", i)
        det, pts = s.detect_targets(), s.point_targets()
        assert set(det) == set(pts)
        for o in s.objects:
            assert o.box in det[o.name] and o.box in det[o.shape]
        for name, boxes in det.items():
            assert len(boxes) == sum(name in (o.shape, o.name) for o in s.objects)
            parsed = parse_boxes(format_boxes(boxes))
            assert len(parsed) == len(boxes)
            # Location tokens: the centre is within half a 2-px bin, width and height within half a pixel.
            assert np.allclose(parsed, boxes, atol=1 / 96 + 1 / 192 + 1e-9)
            assert [b[0] + b[2] for b in boxes] == sorted(b[0] + b[2] for b in boxes)  # left to right
            assert np.allclose(parse_points(format_points(pts[name])), pts[name], atol=1 / 96 + 1e-9)
    assert format_boxes([]) == "none" and parse_boxes("none") == [] and parse_points("none") == []


def test_location_tokens_and_the_readable_form() -> None:
    box = (0.10, 0.20, 0.30, 0.40)
    assert format_boxes([box]) == "<x_9> <y_14> <w_19> <h_19>"
    assert format_points([(0.5, 0.25)]) == "<x_24> <y_12>"
    assert parse_points("<x_24> <y_12>") == [(24.5 / 48, 12.5 / 48)]
    assert readable("detect", format_boxes([box])) == "0.10 0.20 0.30 0.40"
    assert readable("point", "<x_24> <y_12>, junk") == "0.51 0.26"
    assert readable("point", "nothing here") == "none" and readable("query", "red") == "red"
    # Families out of order, an unknown family, a bin past the grid: dropped, never raised on.
    for text in ("<y_3> <x_4>", "<x_3> <z_4>", "<x_48> <y_1>", "<x_3> <y_4> <w_5>"):
        assert parse_points(text) == [] and parse_boxes(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "",
        "none",
        "garbage",
        "0.1 0.2 0.3",
        "0.5 0.5 0.2 0.2",
        "1.7 0.2 0.3 0.4",
        "0.1 0.2 0.3 0.4 0.5",
        "nan nan nan nan",
    ],
)
def test_parse_malformed_is_empty_not_an_error(text: str) -> None:
    assert parse_boxes(text) == []
    assert parse_points(text) == []


def test_parse_keeps_good_groups_among_bad_ones() -> None:
    assert parse_boxes("0.10 0.20 0.30 0.40, junk, 0.50 0.50 0.60 0.70.") == [
        (0.1, 0.2, 0.3, 0.4),
        (0.5, 0.5, 0.6, 0.7),
    ]
    assert parse_points("0.10 0.20, 0.3, 0.50 0.60") == [(0.1, 0.2), (0.5, 0.6)]


def test_render_scene_any_size() -> None:
    a, b = render_scene(42, 64), render_scene(42, 128)
    assert a.objects == b.objects and a.image.size == (64, 64) and b.image.size == (128, 128)


def test_count_weights_shift_how_many_objects_training_scenes_hold() -> None:
    """Crowded scenes on request (training), the world's own scenes by default (evaluation)."""
    plain = [len(render_scene(seed, 48).objects) for seed in range(300)]
    crowded = [len(render_scene(seed, 48, count_weights=(1, 2, 3, 4, 5, 6)).objects) for seed in range(300)]
    assert np.mean(crowded) > np.mean(plain) + 0.7
    assert Counter(crowded)[1] < Counter(plain)[1] / 2
    only_three = render_scene(7, 48, count_weights=(0, 0, 1, 0, 0, 0))
    assert len(only_three.objects) == 3  # three small-or-large shapes always fit
    assert render_scene(7, 48, count_weights=(1,) * 6).objects == render_scene(7, 48, count_weights=(1,) * 6).objects


def test_target_power_asks_for_several_objects_more_often() -> None:
    """Detect / point tasks naming several objects on request (training); the world's own draw by default."""
    def matches(power: float) -> list[int]:
        out = []
        for i in range(200):
            sample, rng = get_sample("train", i), np.random.default_rng(i)
            out += [len(t.refs) for t in sample.training_tasks(rng, 6, None, power)
                    if t.skill in ("detect", "point") and t.kind == "present"]
        return out

    plain, several = matches(0.0), matches(2.0)
    assert np.mean([n > 1 for n in several]) > np.mean([n > 1 for n in plain]) + 0.15
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    sample = get_sample("train", 3)
    assert sample.training_tasks(rng_a, 6) == sample.training_tasks(rng_b, 6, None, 0.0)  # 0: the default draw


def test_refs_name_the_objects_each_answer_is_about() -> None:
    for i in range(N):
        s = get_sample("validation", i)
        for qa in s.questions():
            objs = [s.objects[j] for j in qa.refs]
            if qa.qtype in ("colour", "shape", "size"):
                assert len(objs) == 1 and getattr(objs[0], qa.qtype) == qa.answer
            elif qa.qtype == "position":
                assert len(objs) == 1
            elif qa.qtype == "count":
                assert len(objs) == int(qa.answer)
            elif qa.qtype == "existence":
                assert bool(objs) == (qa.answer == "yes")
        rng = np.random.default_rng(i)
        for t in s.training_tasks(rng, 8):
            if t.skill == "detect":
                boxes = [s.objects[j].box for j in t.refs]
                assert len(parse_boxes(t.answer)) == len(boxes)
                assert np.allclose(
                    np.reshape(parse_boxes(t.answer), (-1, 4)), np.reshape(boxes, (-1, 4)), atol=1 / 96 + 1 / 192 + 1e-9
                )
