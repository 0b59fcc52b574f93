"""Held-out evaluation of the four skills on the synthetic world.

For each image of a split the world fixes its evaluation tasks (`Sample.eval_tasks`): one caption (the
length cycles with the index), one question of every type the scene supports (yes/no and count answers
balanced), one detect and one point (85 % name an object present, 15 % one absent). Metrics:

- query: exact match after normalising case, spaces and a final full stop; overall and per question type;
- detect: boxes matched one-to-one to the truth by IoU (greedy, best first); mean IoU over true boxes
  (a missed box counts 0), and F1 at IoU >= 0.5 over all detect tasks (absent objects included);
- point: a true object is hit when a distinct predicted point lies inside its box; hit-rate = hits / true
  objects, precision = hits / predicted points, and `none` accuracy on absent objects;
- caption: content accuracy = the set of (colour, shape) pairs mentioned equals the scene's (every object
  mentioned, none invented); count accuracy = the mentioned counts are right too.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable

import numpy as np

from dreamforge.world import COLOURS, PLURALS, SHAPES, SIZES, Box, Point, Sample, Task, get_sample, parse_boxes
from dreamforge.world import parse_points as parse_world_points
from dreamforge.world.tasks import NUMBER_WORDS

TARGETS = {"query_em": 0.90, "detect_miou": 0.70, "detect_f1": 0.90, "point_hit_rate": 0.90, "caption_content": 0.85}
_SHAPE_OF = {**{s: s for s in SHAPES}, **{p: s for s, p in PLURALS.items()}}
_COUNT_OF = {**{w: i for i, w in enumerate(NUMBER_WORDS)}, "an": 1, "one": 1}


def normalise(text: str) -> str:
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


def caption_mentions(text: str) -> Counter:
    """(colour, shape) pairs a caption mentions, with counts (`two red circles` counts 2)."""
    words = re.findall(r"[a-z]+|\d+", text.lower())
    found: Counter = Counter()
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


def _object_name(task: Task) -> str:
    prefix = "detect " if task.skill == "detect" else "point at "
    return task.prompt[len(prefix) :].rstrip(".")


def score(sample: Sample, task: Task, output: str, rec: dict) -> None:
    """Add one (task, model output) pair to the running tallies in `rec`."""
    if task.skill == "query":
        ok = normalise(output) == normalise(task.answer)
        rec["query"].append(ok)
        rec[f"query_{task.kind}"].append(ok)
    elif task.skill == "caption":
        truth = Counter((o.colour, o.shape) for o in sample.objects)
        said = caption_mentions(output)
        rec["caption_content"].append(set(said) == set(truth))
        rec["caption_counts"].append(said == truth)
        rec[f"caption_{task.kind}"].append(set(said) == set(truth))
    elif task.skill == "detect":
        truth_boxes = sample.detect_targets().get(_object_name(task), [])
        pred = parse_boxes(output)
        ious = match_boxes(pred, truth_boxes)
        rec["detect_iou"].extend(ious)
        tp = sum(v >= 0.5 for v in ious)
        rec["_det_tp"].append(tp)
        rec["_det_pred"].append(len(pred))
        rec["_det_true"].append(len(truth_boxes))
        if not truth_boxes:
            rec["detect_absent_none"].append(not pred)
    elif task.skill == "point":
        truth_boxes = sample.detect_targets().get(_object_name(task), [])
        pred = parse_world_points(output)
        hits = point_hits(pred, truth_boxes)
        rec["_pt_hits"].append(hits)
        rec["_pt_pred"].append(len(pred))
        rec["_pt_true"].append(len(truth_boxes))
        if not truth_boxes:
            rec["point_absent_none"].append(not pred)


def summarise(rec: dict) -> dict:
    out: dict = {}
    for key, vals in rec.items():
        if not key.startswith("_") and vals:
            out[key if key != "query" else "query_em"] = float(np.mean(vals))
    out["detect_miou"] = out.pop("detect_iou", 0.0)
    tp, n_pred, n_true = sum(rec["_det_tp"]), sum(rec["_det_pred"]), sum(rec["_det_true"])
    prec, recall = tp / max(n_pred, 1), tp / max(n_true, 1)
    out["detect_precision"], out["detect_recall"] = prec, recall
    out["detect_f1"] = 2 * prec * recall / (prec + recall) if prec + recall else 0.0
    hits, n_pred, n_true = sum(rec["_pt_hits"]), sum(rec["_pt_pred"]), sum(rec["_pt_true"])
    out["point_hit_rate"], out["point_precision"] = hits / max(n_true, 1), hits / max(n_pred, 1)
    out["counts"] = {k: len(v) for k, v in rec.items() if not k.startswith("_")}
    out["targets"] = {k: {"target": t, "reached": out.get(k, 0.0) >= t} for k, t in TARGETS.items()}
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def evaluate(
    skills,
    split: str = "test",
    n: int = 500,
    start: int = 0,
    batch_size: int = 64,
    image_size: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Metrics of `skills` (a `dreamforge.model.skills.Skills`) on `n` images of `split`."""
    from dreamforge.model.skills import MAX_NEW_TOKENS

    size = image_size or skills.processor.image_processor.max_image_size["longest_edge"]
    t0 = time.time()
    jobs: dict[str, list[tuple[Sample, Task]]] = defaultdict(list)
    for i in range(start, start + n):
        sample = get_sample(split, i, size)
        for task in sample.eval_tasks():
            jobs[task.skill].append((sample, task))
    rec: dict = defaultdict(list)
    examples: list[dict] = []
    for skill, items in jobs.items():
        items.sort(key=lambda st: len(st[1].answer))  # similar lengths batch together
        for b in range(0, len(items), batch_size):
            chunk = items[b : b + batch_size]
            outputs = skills.generate([s.image for s, _ in chunk], [t.prompt for _, t in chunk], MAX_NEW_TOKENS[skill])
            for (sample, task), output in zip(chunk, outputs, strict=True):
                score(sample, task, output, rec)
                if len(examples) < 40 and sample.index % 25 == 0:
                    examples.append(
                        {"index": sample.index, "prompt": task.prompt, "truth": task.answer, "output": output}
                    )
        if progress:
            progress(f"{skill}: {len(items)} tasks done at {time.time() - t0:.0f}s")
    result = summarise(rec)
    result.update(split=split, n_images=n, start=start, seconds=round(time.time() - t0, 1), examples=examples)
    return result
