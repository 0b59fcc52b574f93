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
  mentioned, none invented); count accuracy = the mentioned counts are right too; background accuracy =
  a normal or long caption names the background's texture and tint right ("on a noisy lavender
  background"; short captions do not name it).
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping

import numpy as np

# The matching helpers live with the reward metrics, so evaluation and rewards judge outputs alike.
from dreamforge.rewards.matching import caption_mentions, iou, match_boxes, normalise, point_hits
from dreamforge.world import Sample, Task, get_sample, parse_boxes
from dreamforge.world import parse_points as parse_world_points

__all__ = ["TARGETS", "caption_mentions", "evaluate", "iou", "match_boxes", "normalise", "point_hits", "score",
           "summarise"]

TARGETS = {"query_em": 0.90, "detect_miou": 0.70, "detect_f1": 0.90, "point_hit_rate": 0.90, "caption_content": 0.85}


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
        if task.kind != "short":
            rec["caption_background"].append(f" {sample.background} background" in f" {normalise(output)}")
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
        points = parse_world_points(output)
        hits = point_hits(points, truth_boxes)
        rec["_pt_hits"].append(hits)
        rec["_pt_pred"].append(len(points))
        rec["_pt_true"].append(len(truth_boxes))
        if not truth_boxes:
            rec["point_absent_none"].append(not points)


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
    beams: Mapping[str, int] | None = None,
) -> dict:
    """Metrics of `skills` (a `dreamforge.model.skills.Skills`) on `n` images of `split`, decoded as served
    (`beams`: beams per skill, default `NUM_BEAMS`)."""
    from dreamforge.model.skills import MAX_NEW_TOKENS, NUM_BEAMS

    beams = NUM_BEAMS if beams is None else beams

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
            outputs = skills.generate([s.image for s, _ in chunk], [t.prompt for _, t in chunk], MAX_NEW_TOKENS[skill],
                                      beams[skill])
            for (sample, task), output in zip(chunk, outputs, strict=True):
                score(sample, task, output, rec)
                if len(examples) < 40 and sample.index % 25 == 0:
                    examples.append(
                        {"index": sample.index, "prompt": task.prompt, "truth": task.answer, "output": output}
                    )
        if progress:
            progress(f"{skill}: {len(items)} tasks done at {time.time() - t0:.0f}s")
    result = summarise(rec)
    result.update(split=split, n_images=n, start=start, beams=dict(beams),
                  length_penalty=getattr(skills, "length_penalty", None), seconds=round(time.time() - t0, 1),
                  examples=examples)
    return result
