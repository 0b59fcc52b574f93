"""Scenes of the synthetic world: coloured shapes on light backgrounds, rendered with PIL.

A scene is drawn from a seed alone (`render_scene(seed)`), so the same seed always gives the same
objects and the same pixels. Geometry is exact: every object's box is the bounding box of the shape as
drawn (normalised to [0, 1], x_min, y_min, x_max, y_max) and its centre is the centre of that box.
Objects never overlap and keep a margin from each other and from the border, so every ground-truth
fact about a scene is unambiguous.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (30, 160, 60),
    "blue": (35, 75, 220),
    "yellow": (240, 200, 20),
    "purple": (135, 50, 175),
    "orange": (245, 125, 15),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "cross")
PLURALS: dict[str, str] = {s: ("crosses" if s == "cross" else s + "s") for s in SHAPES}
SIZES: tuple[str, ...] = ("small", "large")
# Side of an object's box as a fraction of the image side, per size name.
SIZE_RANGES: dict[str, tuple[float, float]] = {"small": (0.15, 0.19), "large": (0.25, 0.31)}
# Background tints (light) and textures; their names never collide with object colours.
TINTS: dict[str, tuple[int, int, int]] = {
    "white": (246, 246, 244),
    "grey": (222, 222, 222),
    "cream": (245, 238, 215),
    "mint": (218, 240, 226),
    "lavender": (232, 226, 245),
    "peach": (248, 226, 212),
}
TEXTURES: tuple[str, ...] = ("plain", "noisy")
MAX_OBJECTS = 6
MARGIN = 0.02  # gap kept between objects and from the image border (fraction of the side)
SUPERSAMPLE = 4  # shapes are drawn at this multiple of the output size, then downsampled (anti-aliasing)

Box = tuple[float, float, float, float]
Point = tuple[float, float]


@dataclass(frozen=True)
class WorldObject:
    """One shape in a scene. `box` is normalised (x_min, y_min, x_max, y_max)."""

    colour: str
    shape: str
    size: str
    box: Box

    @property
    def centre(self) -> Point:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class Scene:
    """Objects (sorted left to right by centre) and background of one image, plus its pixels."""

    seed: int
    objects: list[WorldObject]
    tint: str
    texture: str
    image: Image.Image = field(repr=False)

    @property
    def background(self) -> str:
        return f"{self.texture} {self.tint}"


def _shape_polygon(shape: str, x0: float, y0: float, side: float) -> list[tuple[float, float]] | None:
    """Vertices of a polygonal shape filling the square box at (x0, y0) with the given side; None for circles."""
    x1, y1 = x0 + side, y0 + side
    cx, cy = x0 + side / 2, y0 + side / 2
    if shape == "square":
        return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    if shape == "triangle":
        return [(cx, y0), (x1, y1), (x0, y1)]
    if shape == "diamond":
        return [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
    if shape == "cross":
        t = side / 3
        return [
            (x0 + t, y0), (x0 + 2 * t, y0), (x0 + 2 * t, y0 + t), (x1, y0 + t), (x1, y0 + 2 * t),
            (x0 + 2 * t, y0 + 2 * t), (x0 + 2 * t, y1), (x0 + t, y1), (x0 + t, y0 + 2 * t), (x0, y0 + 2 * t),
            (x0, y0 + t), (x0 + t, y0 + t),
        ]  # fmt: skip
    if shape == "star":
        # Five points; the outer radius is chosen so the star's bounding box is exactly side x side after
        # scaling each axis separately (a regular star is wider than it is tall).
        pts = []
        for k in range(10):
            r = 1.0 if k % 2 == 0 else 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((r * math.cos(a), r * math.sin(a)))
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        mx, my = min(xs), min(ys)
        sx, sy = max(xs) - mx, max(ys) - my
        return [(x0 + (px - mx) / sx * side, y0 + (py - my) / sy * side) for px, py in pts]
    return None


def _place(rng: np.random.Generator, sizes: list[str]) -> list[tuple[float, float, float]] | None:
    """Non-overlapping square boxes (x0, y0, side) for the given size names, or None if they do not fit."""
    placed: list[tuple[float, float, float]] = []
    for size in sizes:
        lo, hi = SIZE_RANGES[size]
        for _ in range(200):
            side = float(rng.uniform(lo, hi))
            x0 = float(rng.uniform(MARGIN, 1 - MARGIN - side))
            y0 = float(rng.uniform(MARGIN, 1 - MARGIN - side))
            if all(
                x0 + side + MARGIN <= px or px + ps + MARGIN <= x0 or y0 + side + MARGIN <= py or py + ps + MARGIN <= y0
                for px, py, ps in placed
            ):
                placed.append((x0, y0, side))
                break
        else:
            return None
    return placed


def render_scene(
    seed: int, image_size: int = 96, max_objects: int = MAX_OBJECTS, count_weights: Sequence[float] | None = None
) -> Scene:
    """Draw the scene for `seed` at `image_size` x `image_size` pixels (RGB). A smaller `max_objects` draws
    simpler scenes (a training curriculum); `count_weights` (relative odds of 1, 2, ... objects) lets training
    see crowded scenes more often; the defaults are the world proper (1 to 6 objects, equally likely)."""
    rng = np.random.default_rng(seed)
    if count_weights is None:
        n = int(rng.integers(1, max_objects + 1))
    else:
        odds = np.asarray(count_weights[:max_objects], dtype=float)
        n = 1 + int(rng.choice(len(odds), p=odds / odds.sum()))
    colour_names = list(COLOURS)
    while True:
        sizes = [SIZES[int(rng.integers(0, 2))] for _ in range(n)]
        boxes = _place(rng, sizes)
        if boxes is not None:
            break
        n = max(1, n - 1)
    # Scenes often repeat a colour or a shape, so counting and comparison questions have real answers.
    palette = rng.choice(len(colour_names), size=int(rng.integers(1, min(n, 4) + 1)), replace=False)
    shapes = rng.choice(len(SHAPES), size=int(rng.integers(1, min(n, 4) + 1)), replace=False)
    objects: list[WorldObject] = []
    for size, (x0, y0, side) in zip(sizes, boxes, strict=True):
        colour = colour_names[int(rng.choice(palette))] if rng.random() < 0.7 else colour_names[int(rng.integers(6))]
        shape = SHAPES[int(rng.choice(shapes))] if rng.random() < 0.7 else SHAPES[int(rng.integers(len(SHAPES)))]
        objects.append(WorldObject(colour, shape, size, (x0, y0, x0 + side, y0 + side)))
    tint = list(TINTS)[int(rng.integers(len(TINTS)))]
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    jitter = rng.integers(-18, 19, size=(len(objects), 3))
    noise_seed = int(rng.integers(2**31))

    big = image_size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), TINTS[tint])
    draw = ImageDraw.Draw(canvas)
    for obj, jit in zip(objects, jitter, strict=True):
        fill = tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(COLOURS[obj.colour], jit, strict=True))
        x0, y0, x1, _ = obj.box
        poly = _shape_polygon(obj.shape, x0 * big, y0 * big, (x1 - x0) * big)
        if poly is None:
            draw.ellipse([x0 * big, y0 * big, x1 * big, obj.box[3] * big], fill=fill)
        else:
            draw.polygon(poly, fill=fill)
    image = canvas.resize((image_size, image_size), Image.Resampling.BOX)
    if texture == "noisy":
        noise = np.random.default_rng(noise_seed).normal(0, 9, size=(image_size, image_size, 1))
        pixels = np.asarray(image, dtype=np.float32) + noise
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    objects.sort(key=lambda o: (o.centre[0], o.centre[1]))
    return Scene(seed=seed, objects=objects, tint=tint, texture=texture, image=image)
