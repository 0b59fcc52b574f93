"""What a reward function scores: one served output with whatever is known about it.

`ScoringItem.output` is what the platform served: plain text (caption, query, chat) or, for detect
and point, the JSON of boxes/points. The readers below accept every shape the platform produces
(`{"text", "boxes"|"points"}` kept by feedback, Moondream's `{"objects": [{x_min, ...}]}` /
`{"points": [{x, y}]}`, or the world's text format `0.10 0.20 0.30 0.40, ...`), so a reward never
depends on which API surface produced the output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dreamforge.rewards.matching import object_name
from dreamforge.world.scene import Box, Point
from dreamforge.world.tasks import parse_boxes, parse_points

SKILLS = ("caption", "query", "detect", "point", "chat")


@dataclass(frozen=True)
class ScoringItem:
    skill: str
    prompt: str
    output: str
    reference: dict[str, Any] | None = None   # {"answer"} | {"objects": [...]} | {"boxes"|"points"} | {"correction"}
    latency_ms: float | None = None
    rating: dict[str, Any] | None = None      # {"kind": "thumbs"|"score"|"flag", "value": ...}
    preferred: bool | None = None             # pairwise: was this output the preferred one


@dataclass(frozen=True)
class Score:
    reward: float
    terms: dict[str, float] = field(default_factory=dict)


def _json(text: str) -> Any:
    stripped = text.strip()
    if not stripped.startswith(("{", "[")):
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


def output_text(item: ScoringItem) -> str:
    """The text of the output (the `text`/`caption`/`answer` field of a JSON output, else the output)."""
    doc = _json(item.output)
    if isinstance(doc, dict):
        for key in ("text", "caption", "answer"):
            if isinstance(doc.get(key), str):
                return str(doc[key])
    return item.output


def _floats(values: Any, n: int) -> tuple[float, ...] | None:
    if isinstance(values, dict):
        keys = ("x_min", "y_min", "x_max", "y_max") if n == 4 else ("x", "y")
        values = [values.get(k) for k in keys]
    if not isinstance(values, (list, tuple)) or len(values) != n:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    return tuple(float(v) for v in values)


def output_boxes(item: ScoringItem) -> list[Box]:
    doc = _json(item.output)
    if isinstance(doc, dict):
        raw = doc.get("boxes", doc.get("objects"))
        if isinstance(raw, list):
            boxes = [b for b in (_floats(v, 4) for v in raw) if b is not None]
            return [(a, b, c, d) for a, b, c, d in boxes if c > a and d > b]
        if isinstance(doc.get("text"), str):
            return parse_boxes(doc["text"])
    return parse_boxes(output_text(item))


def output_points(item: ScoringItem) -> list[Point]:
    doc = _json(item.output)
    if isinstance(doc, dict):
        raw = doc.get("points")
        if isinstance(raw, list):
            return [(p[0], p[1]) for p in (_floats(v, 2) for v in raw) if p is not None]
        if isinstance(doc.get("text"), str):
            return parse_points(doc["text"])
    return parse_points(output_text(item))


def reference_objects(item: ScoringItem) -> list[dict[str, Any]] | None:
    ref = item.reference or {}
    objects = ref.get("objects")
    return [o for o in objects if isinstance(o, dict)] if isinstance(objects, list) else None


def true_boxes(item: ScoringItem) -> list[Box] | None:
    """Ground-truth boxes for a detect/point item: `reference.boxes`, or the reference objects the
    prompt names (by shape, or colour and shape); None when the reference has neither."""
    ref = item.reference or {}
    if isinstance(ref.get("boxes"), list):
        return [b for b in (_floats(v, 4) for v in ref["boxes"]) if b is not None]  # type: ignore[misc]
    objects = reference_objects(item)
    if objects is None:
        return None
    name = object_name(item.prompt)
    out: list[Box] = []
    for o in objects:
        box = _floats(o.get("box"), 4)
        if box is not None and name in (o.get("shape"), f"{o.get('colour')} {o.get('shape')}"):
            out.append(box)  # type: ignore[arg-type]
    return out


def reference_text(item: ScoringItem) -> str | None:
    """The reference answer text: `answer`, else a rater's `correction`, else a `caption`."""
    ref = item.reference or {}
    for key in ("answer", "correction", "caption"):
        if isinstance(ref.get(key), str):
            return str(ref[key])
    return None
