"""Ground-truth matching shared by held-out evaluation (`dreamforge.model.evaluate`) and reward metrics.

One implementation of answer normalisation, box IoU and one-to-one matching, point hits and caption
mention extraction, so a reward term and the model's evaluation can never disagree on what "right" means.
"""

from __future__ import annotations

import re
from collections import Counter

from dreamforge.world.scene import COLOURS, PLURALS, SHAPES, SIZES, Box, Point
from dreamforge.world.tasks import NUMBER_WORDS

_SHAPE_OF = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURALS.items()}}
_COUNT_OF = {**{w: i for i, w in enumerate(NUMBER_WORDS)}, "an": 1, "one": 1}


def normalise(text: str) -> str:
    """Lower case, single spaces, no final full stop: the form answers are compared in."""
    return " ".join(text.lower().strip().rstrip(".").split())


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(pred: list[Box], truth: list[Box]) -> list[float]:
    """IoU of each true box with the prediction matched to it (greedy one-to-one, best pairs first); 0 if none."""
    pairs = sorted(((iou(p, t), i, j) for i, p in enumerate(pred) for j, t in enumerate(truth)), reverse=True)
    used_p: set[int] = set()
    best = [0.0] * len(truth)
    done: set[int] = set()
    for v, i, j in pairs:
        if v <= 0 or i in used_p or j in done:
            continue
        used_p.add(i)
        done.add(j)
        best[j] = v
    return best


def point_hits(pred: list[Point], truth: list[Box]) -> int:
    """True boxes hit by distinct predicted points (greedy one-to-one)."""
    used: set[int] = set()
    hits = 0
    for b in truth:
        for i, (x, y) in enumerate(pred):
            if i not in used and b[0] <= x <= b[2] and b[1] <= y <= b[3]:
                used.add(i)
                hits += 1
                break
    return hits


def caption_mentions(text: str) -> Counter[tuple[str, str]]:
    """(colour, shape) pairs a caption mentions, with counts (`two red circles` counts 2)."""
    words = re.findall(r"[a-z]+|\d+", text.lower())
    found: Counter[tuple[str, str]] = Counter()
    for j, w in enumerate(words):
        shape = _SHAPE_OF.get(w)
        if shape is None:
            continue
        k = j - 1
        if k >= 0 and words[k] in SIZES:
            k -= 1
        if k < 0 or words[k] not in COLOURS:
            continue
        colour = words[k]
        count_word = words[k - 1] if k >= 1 else "a"
        if k >= 1 and words[k - 1] in SIZES:
            count_word = words[k - 2] if k >= 2 else "a"
        n = _COUNT_OF.get(count_word, int(count_word) if count_word.isdigit() else 1)
        found[(colour, shape)] += n
    return found


def object_name(prompt: str) -> str:
    """The object a detect/point prompt asks for, singular: `detect red circles.` -> `red circle`."""
    text = normalise(prompt)
    for prefix in ("detect ", "point at ", "point "):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    words = text.split()
    if words:
        words[-1] = _SHAPE_OF.get(words[-1], words[-1])
    return " ".join(words)
