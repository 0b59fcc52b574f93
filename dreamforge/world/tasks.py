"""Ground truth for every skill, derived from a scene's objects, and the text formats shared with the model.

Formats (the model generates exactly these; `parse_boxes` / `parse_points` read them back):

- the model answers in **location tokens**: a point is `<x_i> <y_j>` (the centre's bin on a 48 x 48 grid,
  2 px at 96 px), a box is `<x_i> <y_j> <w_k> <h_l>` (centre bins, then width and height in 1/96ths). One
  token per value, each naming a place rather than a digit, so the model can copy a location it sees in the
  image into its answer (a PaliGemma-style location vocabulary, centre first);
- people read the decimal form (`readable`): a normalised number with two decimals, `0.37`; a box is
  `x_min y_min x_max y_max`, a point is `x y`; both forms parse;
- several boxes or points are joined with `, ` in left-to-right order; nothing found is `none`.

Prompts (the user turn after the image) are built by `caption_prompt`, `detect_prompt` and `point_prompt`;
a query's prompt is the question itself.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from dreamforge.world.scene import COLOURS, PLURALS, SHAPES, Box, Point, WorldObject

CAPTION_LENGTHS: tuple[str, ...] = ("short", "normal", "long")
QUESTION_TYPES: tuple[str, ...] = ("colour", "shape", "count", "position", "existence", "comparison", "size")
NUMBER_WORDS = ("no", "a", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
POSITION_MARGIN = 0.08  # position questions are asked only when the centre is this far from the midline
NONE = "none"


@dataclass(frozen=True)
class QA:
    """A question, its answer, and `refs`: indices (into the scene's objects) of the objects it is about."""

    qtype: str
    question: str
    answer: str
    refs: tuple[int, ...] = ()


@dataclass(frozen=True)
class Task:
    """One supervised turn: `skill` is caption / query / detect / point; `kind` a caption length,
    question type or `present` / `absent` for detect and point."""

    skill: str
    kind: str
    prompt: str
    answer: str
    refs: tuple[int, ...] = ()  # objects the answer is about (in answer order for detect and point)


def caption_prompt(length: str) -> str:
    return {
        "short": "describe the image briefly.",
        "normal": "describe the image.",
        "long": "describe the image in detail.",
    }[length]


def detect_prompt(name: str) -> str:
    return f"detect {name}."


def point_prompt(name: str) -> str:
    return f"point at {name}."


LOCATION_BINS = 48  # centre bins per axis
EXTENT_UNITS = 96  # width / height unit: 1/96 of the side
LOCATION_FAMILIES = ("x", "y", "w", "h")
LOCATION_TOKENS: tuple[str, ...] = tuple(f"<{f}_{k}>" for f in LOCATION_FAMILIES for k in range(LOCATION_BINS))
_LOC = re.compile(r"^<([xywh])_(\d+)>$")


def fmt(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.2f}"


def centre_bin(v: float) -> int:
    return min(max(int(v * LOCATION_BINS), 0), LOCATION_BINS - 1)


def extent_bin(v: float) -> int:
    return min(max(round(v * EXTENT_UNITS), 1), LOCATION_BINS - 1)


def location_bins(box: Box) -> tuple[int, int, int, int]:
    """A box's location tokens as bins, in family order: centre x, centre y, width, height."""
    a, b, c, d = box
    return centre_bin((a + c) / 2), centre_bin((b + d) / 2), extent_bin(c - a), extent_bin(d - b)


def _loc_point(x: float, y: float) -> str:
    return f"<x_{centre_bin(x)}> <y_{centre_bin(y)}>"


def format_boxes(boxes: list[Box]) -> str:
    """The model's form: `<x_i> <y_j> <w_k> <h_l>` per box (centre, width, height)."""
    if not boxes:
        return NONE
    return ", ".join(
        " ".join(f"<{f}_{k}>" for f, k in zip(LOCATION_FAMILIES, location_bins(box), strict=True)) for box in boxes
    )


def format_points(points: list[Point]) -> str:
    return ", ".join(_loc_point(x, y) for x, y in points) if points else NONE


def readable_boxes(boxes: list[Box]) -> str:
    return ", ".join(" ".join(fmt(v) for v in b) for b in boxes) if boxes else NONE


def readable_points(points: list[Point]) -> str:
    return ", ".join(f"{fmt(x)} {fmt(y)}" for x, y in points) if points else NONE


def readable(skill: str, text: str) -> str:
    """A detect / point answer in the decimal form people read (what the API shows as the output text);
    other skills' text unchanged."""
    if skill == "detect":
        return readable_boxes(parse_boxes(text))
    if skill == "point":
        return readable_points(parse_points(text))
    return text


def model_form(skill: str, text: str) -> str:
    """The inverse of `readable`: a detect / point answer in either form, as the model's location tokens
    (what training targets must be); other skills' text unchanged."""
    if skill == "detect":
        return format_boxes(parse_boxes(text))
    if skill == "point":
        return format_points(parse_points(text))
    return text


_NUM = re.compile(r"^(?:0(?:\.\d+)?|1(?:\.0+)?|\.\d+)$")


def _location_value(part: str, family: str) -> float | None:
    m = _LOC.match(part)
    if not m or m.group(1) != family or int(m.group(2)) >= LOCATION_BINS:
        return None
    k = int(m.group(2))
    return (k + 0.5) / LOCATION_BINS if family in "xy" else k / EXTENT_UNITS


def _groups(text: str, arity: int) -> list[tuple[float, ...]]:
    """Comma-separated groups of `arity` values, decimal (`0.1 0.2 ...`) or location tokens (`<x_3> <y_9>
    [<w_14> <h_14>]`, returned as centre and extent for the caller to turn into a box)."""
    out: list[tuple[float, ...]] = []
    for chunk in (text or "").strip().rstrip(".").split(","):
        parts = chunk.split()
        if len(parts) != arity:
            continue
        if all(_NUM.match(p) for p in parts):
            out.append(tuple(float(p) for p in parts))
            continue
        values = [_location_value(p, f) for p, f in zip(parts, LOCATION_FAMILIES, strict=False)]
        if all(v is not None for v in values):
            loc = tuple(v for v in values if v is not None)
            if arity == 4:
                cx, cy, w, h = loc
                loc = (max(cx - w / 2, 0.0), max(cy - h / 2, 0.0), min(cx + w / 2, 1.0), min(cy + h / 2, 1.0))
            out.append(loc)
    return out


def parse_boxes(text: str) -> list[Box]:
    """Boxes in `text` (either form); malformed groups and degenerate boxes are dropped, never raised on."""
    return [(a, b, c, d) for a, b, c, d in _groups(text, 4) if c > a and d > b]


def parse_points(text: str) -> list[Point]:
    return [(a, b) for a, b in _groups(text, 2)]


def article(phrase: str) -> str:
    """`phrase` with its indefinite article: `a red circle`, `an orange star`."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def count_phrase(n: int, singular: str, plural: str) -> str:
    if n == 1:
        return article(singular)
    return f"{NUMBER_WORDS[n]} {plural}" if n < len(NUMBER_WORDS) else f"{n} {plural}"


def join_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def position_phrase(x: float, y: float) -> str:
    col = "left" if x < 1 / 3 else ("right" if x > 2 / 3 else "")
    row = "top" if y < 1 / 3 else ("bottom" if y > 2 / 3 else "")
    if row and col:
        return f"at the {row} {col}"
    if row:
        return f"at the {row}"
    if col:
        return f"on the {col}"
    return "in the centre"


def caption(objects: list[WorldObject], background: str, length: str = "normal") -> str:
    """short: grouped counts; normal: every object with its size, plus the background; long: also positions."""
    if length == "short":
        groups = Counter(o.name for o in objects)  # insertion order = left to right
        parts = [count_phrase(n, name, f"{name.split()[0]} {PLURALS[name.split()[1]]}") for name, n in groups.items()]
        return join_list(parts) + "."
    if length == "normal":
        return join_list([article(f"{o.size} {o.name}") for o in objects]) + f" on a {background} background."
    if length == "long":
        n = len(objects)
        head = f"there {'is' if n == 1 else 'are'} {count_phrase(n, 'shape', 'shapes').replace('a shape', 'one shape')}"
        body = join_list([f"{article(o.size + ' ' + o.name)} {position_phrase(*o.centre)}" for o in objects])
        return f"{head} on a {background} background. {body}."
    raise ValueError(f"unknown caption length {length!r}")


def _unique(objects: list[WorldObject], **attrs: str) -> WorldObject | None:
    hits = [o for o in objects if all(getattr(o, k) == v for k, v in attrs.items())]
    return hits[0] if len(hits) == 1 else None


def _where(objects: list[WorldObject], **attrs: str) -> tuple[int, ...]:
    return tuple(i for i, o in enumerate(objects) if all(getattr(o, k) == v for k, v in attrs.items()))


def questions(objects: list[WorldObject]) -> list[QA]:
    """Every question this world asks about a scene, with its answer and the objects it depends on."""
    qs: list[QA] = []
    colours_here = sorted({o.colour for o in objects})
    shapes_here = sorted({o.shape for o in objects})
    for s in shapes_here:
        if len(ref := _where(objects, shape=s)) == 1:
            qs.append(QA("colour", f"what colour is the {s}?", objects[ref[0]].colour, ref))
        else:
            for size in ("small", "large"):
                if len(ref := _where(objects, shape=s, size=size)) == 1:
                    qs.append(QA("colour", f"what colour is the {size} {s}?", objects[ref[0]].colour, ref))
    for c in colours_here:
        if len(ref := _where(objects, colour=c)) == 1:
            qs.append(QA("shape", f"what shape is the {c} object?", objects[ref[0]].shape, ref))
        else:
            for size in ("small", "large"):
                if len(ref := _where(objects, colour=c, size=size)) == 1:
                    qs.append(QA("shape", f"what shape is the {size} {c} object?", objects[ref[0]].shape, ref))
    qs.append(QA("count", "how many shapes are there?", str(len(objects)), tuple(range(len(objects)))))
    for s in SHAPES:
        ref = _where(objects, shape=s)
        qs.append(QA("count", f"how many {PLURALS[s]} are there?", str(len(ref)), ref))
    for c in COLOURS:
        ref = _where(objects, colour=c)
        qs.append(QA("count", f"how many {c} shapes are there?", str(len(ref)), ref))
    for c in colours_here:
        for s in shapes_here:
            if ref := _where(objects, colour=c, shape=s):
                qs.append(QA("count", f"how many {c} {PLURALS[s]} are there?", str(len(ref)), ref))
    for i, o in enumerate(objects):
        names = [o.name] if len(_where(objects, colour=o.colour, shape=o.shape)) == 1 else []
        if len(_where(objects, shape=o.shape)) == 1:
            names.append(o.shape)
        x, y = o.centre
        for name in names:
            if abs(x - 0.5) >= POSITION_MARGIN:
                answer = "left" if x < 0.5 else "right"
                qs.append(QA("position", f"is the {name} on the left or on the right?", answer, (i,)))
            if abs(y - 0.5) >= POSITION_MARGIN:
                answer = "top" if y < 0.5 else "bottom"
                qs.append(QA("position", f"is the {name} at the top or at the bottom?", answer, (i,)))
        if o.name in names:
            qs.append(QA("size", f"is the {o.name} small or large?", o.size, (i,)))
    for c in COLOURS:
        for s in SHAPES:
            ref = _where(objects, colour=c, shape=s)
            qs.append(QA("existence", f"is there {article(c + ' ' + s)}?", "yes" if ref else "no", ref))
    for s in SHAPES:
        ref = _where(objects, shape=s)
        qs.append(QA("existence", f"is there {article(s)}?", "yes" if ref else "no", ref))
    for attr, values in (("shape", SHAPES), ("colour", tuple(COLOURS))):
        for a in values:
            for b in values:
                ra, rb = _where(objects, **{attr: a}), _where(objects, **{attr: b})
                if a == b or not (ra or rb):
                    continue
                q = (
                    f"are there more {PLURALS[a]} than {PLURALS[b]}?"
                    if attr == "shape"
                    else (f"are there more {a} shapes than {b} shapes?")
                )
                qs.append(QA("comparison", q, "yes" if len(ra) > len(rb) else "no", ra + rb))
    return qs


def detect_targets(objects: list[WorldObject]) -> dict[str, list[Box]]:
    """Boxes per object name present (`circle`, `red circle`), left to right."""
    out: dict[str, list[Box]] = {}
    for o in objects:
        out.setdefault(o.shape, []).append(o.box)
        out.setdefault(o.name, []).append(o.box)
    return out


def point_targets(objects: list[WorldObject]) -> dict[str, list[Point]]:
    """Centre points per object name present, left to right."""
    return {
        name: [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in boxes] for name, boxes in detect_targets(objects).items()
    }


def absent_names(objects: list[WorldObject]) -> list[str]:
    """Object names (shape, colour shape) not in the scene: detect/point must answer `none` for them."""
    names = {o.name for o in objects} | {o.shape for o in objects}
    everything = list(SHAPES) + [f"{c} {s}" for c in COLOURS for s in SHAPES]
    return [n for n in everything if n not in names]
