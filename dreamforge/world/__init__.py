"""A synthetic visual world for training and evaluating DreamForge's default VLM.

Images of 1-6 coloured shapes (circle, square, triangle, star, diamond, cross; red, green, blue, yellow,
purple, orange; small or large) on light plain or noisy backgrounds, deterministic by seed, with ground
truth for every skill: captions (short/normal/long), question/answer pairs, boxes (detect) and centre
points (point). Pure PIL + numpy.

    from dreamforge.world import get_sample
    s = get_sample("test", 0)
    s.image, s.objects, s.caption("long"), s.questions(), s.detect_targets(), s.point_targets()
"""

from dreamforge.world.dataset import DEFAULT_MIX, SKILLS, SPLITS, Sample, get_sample, iter_samples, split_seed
from dreamforge.world.scene import COLOURS, PLURALS, SHAPES, SIZES, Box, Point, Scene, WorldObject, render_scene
from dreamforge.world.tasks import (
    CAPTION_LENGTHS,
    LOCATION_TOKENS,
    NONE,
    QA,
    QUESTION_TYPES,
    Task,
    caption_prompt,
    detect_prompt,
    format_boxes,
    format_points,
    model_form,
    parse_boxes,
    parse_points,
    point_prompt,
    readable,
)

__all__ = [
    "CAPTION_LENGTHS",
    "COLOURS",
    "DEFAULT_MIX",
    "LOCATION_TOKENS",
    "NONE",
    "PLURALS",
    "QA",
    "QUESTION_TYPES",
    "SHAPES",
    "SIZES",
    "SKILLS",
    "SPLITS",
    "Box",
    "Point",
    "Sample",
    "Scene",
    "Task",
    "WorldObject",
    "caption_prompt",
    "detect_prompt",
    "format_boxes",
    "format_points",
    "get_sample",
    "iter_samples",
    "model_form",
    "parse_boxes",
    "parse_points",
    "point_prompt",
    "readable",
    "render_scene",
    "split_seed",
]
